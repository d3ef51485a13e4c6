# The experiment: inherits a .py, a .yaml and a .json base.
_base_ = ['base_model.py', 'base_schedule.yaml', 'base_runtime.json']

model = dict(
    backbone=dict(depth=101, frozen_stages=-1),  # merged into the base backbone
    neck=dict(_delete_=True, type='PAFPN', in_channels=[256, 512], out_channels=128),  # replaces the base neck
    head=dict(anchor=dict(scales=[4, 8])),  # lists replace
)
optim_wrapper = dict(optimizer=dict(lr=0.02), clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=12, by_epoch=True)]
train_cfg = dict(max_epochs=24)
max_epochs = {{_base_.train_cfg.max_epochs}}
depth_from_base = _base_.model.backbone.depth
auto_scale_lr = dict(enable=False, base_batch_size=16)
