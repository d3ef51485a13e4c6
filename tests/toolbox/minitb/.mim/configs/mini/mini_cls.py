_base_ = ["../_base_/mini_runtime.py"]

data_root = "{{$MINITB_DATA:data/mini}}"
model = dict(
    type="MiniClassifier",
    backbone=dict(type="MiniNet", width=8, norm_eval=True),
    head=dict(type="MiniHead", in_channels=8, num_classes=3),
    data_preprocessor=dict(type="MiniDataPreprocessor", mean=[127.5] * 3, std=[64.0] * 3),
    test_cfg=dict(temperature=2.0),
)
pipeline = [dict(type="LoadNpyImage"), dict(type="RandomFlipNoise", prob=0.5, std=8.0), dict(type="PackMiniInputs")]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type="MiniRepeatSampler", shuffle=True, repeats=2),
    batch_sampler=dict(type="MiniBucketBatchSampler"),
    collate_fn=dict(type="minitb.mini_collate", scale=1),  # MMEngine finds functions by root lookup: scoped
    dataset=dict(type="MiniDataset", data_root=data_root, ann_file="train.json", data_prefix=dict(img_path="imgs"),
                 pipeline=pipeline),
)
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(type="MiniDataset", data_root=data_root, ann_file="val.json", data_prefix=dict(img_path="imgs"),
                 pipeline=[dict(type="LoadNpyImage"), dict(type="PackMiniInputs")]),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="MiniAccuracy")
test_evaluator = val_evaluator
train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=1)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    optimizer=dict(type="MiniSGD", lr=0.05, momentum=0.9, weight_decay=1e-4),
    constructor="MiniLayerDecayConstructor",
    paramwise_cfg=dict(decay_rate=0.5),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", T_max=2, by_epoch=True, begin=1, end=3),
]
custom_hooks = [dict(type="MiniShrinkHook", factor=0.9)]
