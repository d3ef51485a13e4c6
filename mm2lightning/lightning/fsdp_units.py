"""Which submodules of a model become FSDP2 shard units: ``auto_wrap_policy`` in its MMEngine and torch forms."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Collection, Mapping
from typing import Any, Union

from torch import nn

# A policy as users give it: module classes, a torch FSDP1-style callable, or MMEngine's config forms.
WrapPolicy = Union[None, type, Collection[type], Callable[..., bool], str, Mapping[str, Any]]


class ShardPolicyError(ValueError):
    """An ``auto_wrap_policy`` that cannot be used: an unknown name, a bad form, or one that matches nothing."""


def _import_function(name: str) -> Callable[..., bool]:
    """A function named by a dotted path (``torch.distributed.fsdp.wrap.size_based_auto_wrap_policy``) or in
    mmengine's ``FUNCTIONS`` registry (where MMEngine's FlexibleRunner looks names up)."""
    module_name, _, attr = name.rpartition(".")
    if module_name:
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as error:
            raise ShardPolicyError(f"auto_wrap_policy {name!r} cannot be imported: {error}") from error
    try:
        from mmengine.registry import FUNCTIONS
    except ImportError:
        FUNCTIONS = None  # noqa: N806
    function = FUNCTIONS.get(name) if FUNCTIONS is not None else None
    if function is None:
        raise ShardPolicyError(
            f"auto_wrap_policy {name!r} is not registered: give a dotted import path "
            "(e.g. 'torch.distributed.fsdp.wrap.size_based_auto_wrap_policy') or a name in mmengine's FUNCTIONS"
        )
    return function


def _as_callable(policy: WrapPolicy) -> Callable[..., bool] | None:
    """The policy as a torch FSDP1 auto-wrap callable ``(module, recurse, nonwrapped_numel) -> bool``."""
    if policy is None:
        return None
    if isinstance(policy, str):
        return _import_function(policy)
    if isinstance(policy, Mapping):
        kwargs = dict(policy)
        if "type" not in kwargs:
            raise ShardPolicyError(f"auto_wrap_policy as a dict needs a 'type' (a function), but got {policy!r}")
        function = kwargs.pop("type")
        return functools.partial(_import_function(function) if isinstance(function, str) else function, **kwargs)
    if isinstance(policy, type) or (
        isinstance(policy, Collection) and policy and all(isinstance(c, type) for c in policy)
    ):
        classes = (policy,) if isinstance(policy, type) else tuple(policy)
        if not all(issubclass(c, nn.Module) for c in classes):
            raise ShardPolicyError(f"auto_wrap_policy classes must be nn.Module subclasses, but got {classes}")
        return lambda module, recurse, nonwrapped_numel: recurse or isinstance(module, classes)
    if callable(policy):
        params = inspect.signature(policy).parameters
        if not {"module", "recurse", "nonwrapped_numel"} <= set(params) and not any(
            p.kind is p.VAR_KEYWORD for p in params.values()
        ):
            raise ShardPolicyError(
                "a callable auto_wrap_policy takes torch's FSDP auto-wrap arguments (module, recurse, "
                f"nonwrapped_numel) and returns a bool, but {policy!r} takes ({', '.join(params)})"
            )
        return policy
    raise ShardPolicyError(
        "auto_wrap_policy must be None, an nn.Module class or a set of them, a callable (module, recurse, "
        f"nonwrapped_numel) -> bool, a function name or dict(type=..., **kwargs), but got {policy!r}"
    )


def _trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def shard_unit_names(model: nn.Module, policy: WrapPolicy = None) -> list[str]:
    """The qualified names of ``model``'s submodules that become shard units, children before their parents.

    Args:
        model: The model (the ``BaseModel``); the model itself is never a unit here.
        policy: ``None``: each direct child with trainable parameters (a GAN's generator and discriminator
            shard separately). Else module classes, a torch FSDP1-style callable, or MMEngine's config forms
            (a function name, ``dict(type=..., **kwargs)``), applied bottom-up as torch's FSDP1 auto-wrap does:
            ``recurse=True`` asks whether to look inside a module, ``recurse=False`` whether it becomes a
            unit, given the number of its parameters not in a unit below it.

    Raises:
        ShardPolicyError: The policy is malformed or matches no submodule.
    """
    decide = _as_callable(policy)
    if decide is None:
        names = [name for name, child in model.named_children() if _trainable(child)]
        if not names:
            raise ShardPolicyError(f"{type(model).__name__} has no child with trainable parameters to shard")
        return names

    units: list[str] = []

    def visit(module: nn.Module, prefix: str) -> int:
        """Walk bottom-up; return the number of parameters of ``module`` not in a unit."""
        total = sum(p.numel() for p in module.parameters())
        if not decide(module=module, recurse=True, nonwrapped_numel=total):
            return total
        numel = sum(p.numel() for p in module.parameters(recurse=False))
        for name, child in module.named_children():
            numel += visit(child, f"{prefix}{name}.")
        if prefix and numel and decide(module=module, recurse=False, nonwrapped_numel=numel):
            units.append(prefix[:-1])
            return 0
        return numel

    visit(model, "")
    if not units:
        raise ShardPolicyError(
            f"auto_wrap_policy {policy!r} matches no submodule with parameters of {type(model).__name__}, so "
            "nothing would be sharded; give module classes the model has (e.g. {nn.Linear}) or leave it None "
            "(each trainable child of the model)"
        )
    return units
