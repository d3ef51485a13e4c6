default_scope = "minitb"
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=2),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=1, save_best="mini/top1"),
    sampler_seed=dict(type="DistSamplerSeedHook"),
)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo"))
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0, deterministic=True)
visualizer = dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend")])
