_base_ = ["_base_/model.py", "_base_/runtime.yaml", "_base_/data.json"]
model = dict(hidden=6)
optim_wrapper = dict(optimizer=dict(_delete_=True, type="Adam", lr=0.01))
test_dataloader = dict(
    dataset=dict(type="CliToySet", size=8, seed=2),
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
    batch_size=4,
)
test_evaluator = dict(type="CliMSE")
