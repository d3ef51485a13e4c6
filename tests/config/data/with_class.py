# Imported classes stay values (MMEngine keeps them when _base_ comes first).
_base_ = 'base_schedule.yaml'
from torch.optim import SGD  # noqa: E402

optim_wrapper = dict(optimizer=dict(type=SGD, lr=0.1))
