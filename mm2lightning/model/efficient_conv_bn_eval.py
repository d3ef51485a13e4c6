"""MMEngine's ``cfg.efficient_conv_bn_eval``: a convolution followed by a batch norm in eval mode runs as one
convolution whose weights are scaled on the fly ("Tune-Mode ConvBN Blocks For Efficient Transfer Learning",
https://arxiv.org/abs/2305.11624): the same output and gradients, without keeping the convolution's output."""

from __future__ import annotations

from operator import attrgetter

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd


def conv_bn(bn: _BatchNorm, conv: _ConvNd, x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))``; with ``bn`` in eval mode as one convolution: ``conv``'s weights times the batch norm's
    scale ``weight / sqrt(running_var + eps)``, its bias moved through the normalisation."""
    if bn.training:
        return bn(conv._conv_forward(x, conv.weight, conv.bias))
    ones = torch.ones_like(bn.running_var)
    scale = (bn.weight if bn.weight is not None else ones) * torch.rsqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_var)
    shift = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_var)
    weight = conv.weight * scale.reshape(-1, *[1] * (conv.weight.dim() - 1))
    return conv._conv_forward(x, weight, shift + scale * (bias - bn.running_mean))


def _fuse_conv_bn_calls(graph_module: fx.GraphModule) -> None:
    """Replace each batch-norm call whose input is a convolution's output used by nothing else with
    :func:`conv_bn`, in place."""
    modules = dict(graph_module.named_modules())
    graph = graph_module.graph
    for bn_node in list(graph.nodes):
        if bn_node.op != "call_module" or not isinstance(modules[bn_node.target], _BatchNorm):
            continue
        conv_node = bn_node.args[0]
        if getattr(conv_node, "op", None) != "call_module" or not isinstance(modules[conv_node.target], _ConvNd):
            continue
        if len(conv_node.users) > 1:
            continue
        with graph.inserting_before(conv_node):
            fused = graph.call_function(conv_bn, (graph.get_attr(bn_node.target), graph.get_attr(conv_node.target),
                                                  conv_node.args[0]))
        bn_node.replace_all_uses_with(fused)
        graph.erase_node(bn_node)
        graph.erase_node(conv_node)
    graph.lint()
    graph_module.recompile()


def turn_on_efficient_conv_bn_eval(model: nn.Module, modules: str | list[str]) -> None:
    """For each named submodule of ``model`` (``'backbone'``), trace its ``forward`` with ``torch.fx`` and run its
    conv + batch-norm pairs through :func:`conv_bn`, as MMEngine's ``turn_on_efficient_conv_bn_eval``.

    Raises:
        AttributeError: A name that is not a submodule of ``model``.
        torch.fx.proxy.TraceError: A submodule whose forward ``torch.fx`` cannot trace.
    """
    for name in [modules] if isinstance(modules, str) else list(modules):
        module = attrgetter(name)(model)
        traced = fx.symbolic_trace(module)
        _fuse_conv_bn_calls(traced)
        module.forward = traced.forward
