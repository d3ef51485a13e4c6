# The toy experiment sharded as MMEngine's FlexibleRunner config asks: every Linear is a shard unit.
_base_ = ["toy.py"]
strategy = dict(
    type="FSDPStrategy",
    model_wrapper=dict(
        auto_wrap_policy=dict(type="torch.distributed.fsdp.wrap.size_based_auto_wrap_policy", min_num_params=1)
    ),
)
