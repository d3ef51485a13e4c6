"""MMEngine's FSDP settings as an :class:`~mm2lightning.lightning.fsdp.MMFSDPStrategy`.

Two places in MMEngine configs ask for FSDP: FlexibleRunner's
``strategy=dict(type='FSDPStrategy', model_wrapper=dict(...), state_dict_cfg=...)`` and the Runner's
``model_wrapper_cfg=dict(type='MMFullyShardedDataParallel', ...)``. Each key either maps onto FSDP2's
equivalent or is refused by name (FSDP1 options without an FSDP2 counterpart).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from mm2lightning.lightning.fsdp import MMFSDPStrategy

FSDP_STRATEGY_TYPES = ("FSDPStrategy",)
FSDP_WRAPPER_TYPES = ("MMFullyShardedDataParallel",)
# FSDP1's sharding strategies: (reshard_after_forward, replicate across nodes); None: FSDP's own FULL_SHARD
# default, in which the root keeps its parameters from forward to backward
_SHARDING = {
    "FULL_SHARD": (None, False),
    "SHARD_GRAD_OP": (False, False),
    "HYBRID_SHARD": (None, True),
    "_HYBRID_SHARD_ZERO2": (False, True),
}


def _name(value: Any) -> Any:
    return value.name if hasattr(value, "name") and not isinstance(value, str) else value


def _mp_policy(precision: Any) -> dict[str, Any]:
    """FSDP1's ``MixedPrecision`` (or MMEngine's dict of it) as FSDP2's ``MixedPrecisionPolicy`` fields."""
    if isinstance(precision, Mapping):
        fields = dict(precision)
    else:  # an FSDP1 MixedPrecision object: every field, with its defaults
        fields = {k: v for k, v in vars(precision).items() if k != "_module_classes_to_ignore"}
    buffer_dtype = str(fields.pop("buffer_dtype", None)).removeprefix("torch.")
    if buffer_dtype not in ("None", "float32"):
        raise ValueError(
            f"mixed_precision buffer_dtype={buffer_dtype!r}: FSDP2 keeps buffers in their own dtype (float32); "
            "drop buffer_dtype or cast the buffers in the model"
        )
    for key, fsdp1_default in (("keep_low_precision_grads", False), ("cast_root_forward_inputs", True)):
        if fields.pop(key, fsdp1_default) != fsdp1_default:
            raise ValueError(f"mixed_precision {key}={not fsdp1_default} has no FSDP2 counterpart")
    unknown = sorted(set(fields) - {"param_dtype", "reduce_dtype", "cast_forward_inputs"})
    if unknown:
        raise ValueError(f"mixed_precision has keys {unknown}; expected param_dtype, reduce_dtype, buffer_dtype")
    return {k: v for k, v in fields.items() if v is not None}


def _wrapper_kwargs(wrapper: Mapping[str, Any]) -> dict[str, Any]:
    """``MMFullyShardedDataParallel``'s arguments as ``MMFSDPStrategy``'s."""
    cfg = dict(wrapper)
    cfg.pop("type", None)
    kwargs: dict[str, Any] = {}
    if "auto_wrap_policy" in cfg:
        kwargs["auto_wrap_policy"] = cfg.pop("auto_wrap_policy")
    sharding = _name(cfg.pop("sharding_strategy", None))
    if sharding is not None:
        if sharding == "NO_SHARD":
            raise ValueError(
                "sharding_strategy='NO_SHARD' keeps whole parameters on every rank, which is DDP: use "
                "model_wrapper_cfg=dict(type='MMDistributedDataParallel') (or no model_wrapper_cfg)"
            )
        if sharding not in _SHARDING:
            raise ValueError(f"sharding_strategy must be one of {[*_SHARDING, 'NO_SHARD']}, but got {sharding!r}")
        kwargs["reshard_after_forward"], hybrid = _SHARDING[sharding]
        if hybrid:
            kwargs["replicate_size"] = "auto"
    offload = cfg.pop("cpu_offload", None)
    if offload is not None:
        # MMEngine: a bool or FSDP1's CPUOffload(offload_params=...)
        kwargs["cpu_offload"] = offload if isinstance(offload, bool) else bool(getattr(offload, "offload_params", 0))
    precision = cfg.pop("mixed_precision", None)
    if precision is not None:
        kwargs["mp_policy"] = _mp_policy(precision)
    if cfg.pop("use_orig_params", True) is False:
        warnings.warn(
            "use_orig_params=False has no meaning under FSDP2 (parameters are always the module's own, sharded as "
            "DTensors); ignored",
            stacklevel=3,
        )
    if cfg:
        raise ValueError(
            f"FSDP model wrapper options {sorted(cfg)} are not supported by strategy='fsdp_mm' (FSDP2); supported: "
            "auto_wrap_policy, sharding_strategy, cpu_offload, mixed_precision, use_orig_params"
        )
    return kwargs


def fsdp_strategy(cfg: Mapping[str, Any], **process_group: Any) -> MMFSDPStrategy:
    """An ``MMFSDPStrategy`` for a FlexibleRunner ``strategy`` dict or a Runner ``model_wrapper_cfg`` dict;
    ``process_group`` (``process_group_backend``, ``timeout``) goes to the strategy.

    Raises:
        ValueError: An option with no FSDP2 counterpart, named.
    """
    cfg = dict(cfg)
    kind = cfg.pop("type", None)
    if kind in FSDP_WRAPPER_TYPES:  # model_wrapper_cfg: the wrapper's own arguments
        return MMFSDPStrategy(**_wrapper_kwargs(cfg), **process_group)
    if kind not in FSDP_STRATEGY_TYPES:
        raise ValueError(f"expected an FSDP config of type {FSDP_STRATEGY_TYPES + FSDP_WRAPPER_TYPES}, got {kind!r}")
    wrapper = dict(cfg.pop("model_wrapper", None) or {})
    if wrapper.get("type", "MMFullyShardedDataParallel") not in FSDP_WRAPPER_TYPES:
        raise ValueError(
            f"FSDPStrategy's model_wrapper type must be MMFullyShardedDataParallel, got {wrapper['type']!r}"
        )
    kwargs = _wrapper_kwargs(wrapper)
    state_dict_cfg = cfg.pop("state_dict_cfg", "local")
    if isinstance(state_dict_cfg, Mapping):
        state_dict_cfg = str(_name(state_dict_cfg.get("state_dict_type", "LOCAL_STATE_DICT")))
    state_dict_cfg = {"LOCAL_STATE_DICT": "local", "SHARDED_STATE_DICT": "local", "FULL_STATE_DICT": "full"}.get(
        state_dict_cfg, state_dict_cfg
    )
    if state_dict_cfg not in ("local", "full"):
        raise ValueError(
            f"state_dict_cfg must be 'local', 'full' or a dict with state_dict_type, got {state_dict_cfg!r}"
        )
    kwargs["save_distributed_checkpoint"] = state_dict_cfg == "local"
    if cfg.pop("skip_init_weights", False):
        raise ValueError("FSDPStrategy(skip_init_weights=True) is not supported by strategy='fsdp_mm'")
    if cfg.get("activation_checkpointing") is None:
        cfg.pop("activation_checkpointing", None)
    if cfg:
        raise ValueError(
            f"FSDPStrategy options {sorted(cfg)} are not supported by strategy='fsdp_mm'; supported: model_wrapper, "
            "state_dict_cfg"
        )
    return MMFSDPStrategy(**kwargs, **process_group)
