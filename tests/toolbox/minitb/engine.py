"""A hook that changes the weights, an optimizer and a constructor with its own paramwise_cfg key."""

import torch
from mmengine.hooks import Hook
from mmengine.optim import DefaultOptimWrapperConstructor

from minitb.registry import HOOKS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIMIZERS


@HOOKS.register_module()
class MiniShrinkHook(Hook):
    """Scales the head's weights after every training epoch and counts iterations in the message hub."""

    priority = "LOW"

    def __init__(self, factor=0.9):
        self.factor = factor
        self.iters = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.iters += 1
        runner.message_hub.update_info("minitb_iters", self.iters)

    def after_train_epoch(self, runner):
        with torch.no_grad():
            runner.model.head.fc.weight.mul_(self.factor)


@OPTIMIZERS.register_module()
class MiniSGD(torch.optim.SGD):
    """SGD with Nesterov momentum by default."""

    def __init__(self, params, lr=0.1, momentum=0.9, weight_decay=0.0):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MiniLayerDecayConstructor(DefaultOptimWrapperConstructor):
    """The backbone learns at ``paramwise_cfg.decay_rate`` times the head's rate (a key the base class lacks)."""

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.decay_rate = paramwise_cfg.pop("decay_rate", 1.0)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params, module, prefix="", is_dcn_module=None):
        for name, param in module.named_parameters():
            lr = self.base_lr * (self.decay_rate if name.startswith("backbone.") else 1.0)
            params.append(dict(params=[param], lr=lr))
