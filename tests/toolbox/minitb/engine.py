"""A hook that changes the weights, an optimizer, a constructor with its own paramwise_cfg key and a test loop
with its own run()."""

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.runner import TestLoop, ValLoop

from minitb.registry import HOOKS, LOOPS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIMIZERS


class _TwicePass:
    """Evaluates every batch twice and reports how many passes it made (as toolboxes' retrieval and TTA loops run
    their own passes); the hooks are called as MMEngine's loops call them."""

    stage = "test"

    def __init__(self, runner, dataloader, evaluator, passes=2, fp16=False):
        super().__init__(runner, dataloader, evaluator, fp16)
        self.passes = passes

    @torch.no_grad()
    def run(self):
        stage = self.stage
        self.runner.call_hook(f"before_{stage}")
        self.runner.call_hook(f"before_{stage}_epoch")
        self.runner.model.eval()
        for idx, data_batch in enumerate(self.dataloader):
            self.runner.call_hook(f"before_{stage}_iter", batch_idx=idx, data_batch=data_batch)
            for _ in range(self.passes):
                outputs = getattr(self.runner.model, f"{stage}_step")(data_batch)
            self.evaluator.process(data_samples=outputs, data_batch=data_batch)
            self.runner.call_hook(f"after_{stage}_iter", batch_idx=idx, data_batch=data_batch, outputs=outputs)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        metrics["passes"] = self.passes
        self.runner.call_hook(f"after_{stage}_epoch", metrics=metrics)
        self.runner.call_hook(f"after_{stage}")
        return metrics


@LOOPS.register_module()
class MiniTwicePassTestLoop(_TwicePass, TestLoop):
    stage = "test"


@LOOPS.register_module()
class MiniTwicePassValLoop(_TwicePass, ValLoop):
    stage = "val"


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
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model  # as toolboxes' hooks
        with torch.no_grad():
            model.head.fc.weight.mul_(self.factor)


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
