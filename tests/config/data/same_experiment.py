_base_ = ['base_schedule.yaml', 'base_runtime.json']

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=0.001, _delete_=True), clip_grad=dict(max_norm=1.0))
param_scheduler = [dict(type='MultiStepLR', milestones=[16, 22])]
train_cfg = dict(max_epochs=24, val_interval=2)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
extra = dict(tags=['a', 'b'], ratio=0.5, note=None, enabled=True)
