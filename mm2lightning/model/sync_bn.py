"""MMEngine's ``revert_sync_batchnorm`` and ``convert_sync_batchnorm``: what its Runner does to a model's
SyncBatchNorm layers (reverted in a single process, converted under a launcher with ``cfg.sync_bn``)."""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mm2lightning.logging import print_log


class _BatchNormXd(_BatchNorm):
    """A batch norm for inputs of any number of dimensions: what a reverted SyncBatchNorm becomes (MMEngine's)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        return


def _copy_state(source: _BatchNorm, target: _BatchNorm) -> _BatchNorm:
    if source.affine:
        with torch.no_grad():
            target.weight = source.weight
            target.bias = source.bias
    target.running_mean = source.running_mean
    target.running_var = source.running_var
    target.num_batches_tracked = source.num_batches_tracked
    target.training = source.training
    if hasattr(source, "qconfig"):
        target.qconfig = source.qconfig
    return target


@functools.cache
def _sync_bn_types() -> tuple[type, ...]:
    types: list[type] = [nn.SyncBatchNorm]
    try:
        from mmcv.ops import SyncBatchNorm as MMCVSyncBatchNorm  # full mmcv only
    except ImportError:
        pass
    else:
        types.append(MMCVSyncBatchNorm)
    return tuple(types)


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Every ``SyncBatchNorm`` (torch's, and mmcv's when installed) in ``module`` as a ``_BatchNormXd`` with the
    same parameters and statistics; returns the module (a new one when ``module`` itself was one)."""
    output = module
    if isinstance(module, _sync_bn_types()):
        output = _copy_state(module, _BatchNormXd(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats))
    for name, child in module.named_children():
        try:
            output.add_module(name, revert_sync_batchnorm(child))
        except Exception:  # as MMEngine: keep the child, say so
            print_log(f"Failed to convert {child} from SyncBN to BN!", logger="current", level=logging.WARNING)
    return output


def convert_sync_batchnorm(module: nn.Module, implementation: str = "torch") -> nn.Module:
    """Every batch norm in ``module`` as a ``SyncBatchNorm`` (``'torch'``, or ``'mmcv'``'s) with the same
    parameters and statistics; returns the module (a new one when ``module`` itself was one).

    Raises:
        ValueError: ``implementation`` is neither ``'torch'`` nor ``'mmcv'``.
    """
    output = module
    if isinstance(module, _BatchNorm):
        if implementation == "torch":
            sync_bn = nn.SyncBatchNorm
        elif implementation == "mmcv":
            from mmcv.ops import SyncBatchNorm as sync_bn
        else:
            raise ValueError(f'sync_bn should be "torch" or "mmcv", but got {implementation}')
        output = _copy_state(module, sync_bn(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats))
    for name, child in module.named_children():
        output.add_module(name, convert_sync_batchnorm(child, implementation))
    return output
