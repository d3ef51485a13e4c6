# The migration guide's toy experiment as an MMEngine-style config, for `mm2lightning train`:
#   PYTHONPATH=examples/toy mm2lightning train examples/toy/config.py
# It ends at MMEngine Runner's numbers (weight 0.2331653833, bias 0.7770956159) and writes epoch_1..5.ckpt,
# last_checkpoint and CSV logs under work_dirs/toy.
custom_imports = dict(imports=["toy_model"])  # registers ToyModel and ToyDataset

model = dict(type="ToyModel")
work_dir = "work_dirs/toy"
train_dataloader = dict(
    dataset=dict(type="ToyDataset"),
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),  # stack the (img, label) tuples, as a plain DataLoader does
    batch_size=2,
)
train_cfg = dict(by_epoch=True, max_epochs=5)
optim_wrapper = dict(optimizer=dict(type="SGD", lr=0.01))
randomness = dict(seed=0)  # the model is built after seeding: the same initial weights as the guide's run
