_base_ = ["./mini_cls.py"]

# Iteration-based: MMEngine's IterBasedTrainLoop makes its data iterator before the weights are initialised.
train_cfg = dict(_delete_=True, type="IterBasedTrainLoop", max_iters=14, val_interval=7)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type="CosineAnnealingLR", T_max=9, by_epoch=False, begin=5, end=14),
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=7))
log_processor = dict(by_epoch=False)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
