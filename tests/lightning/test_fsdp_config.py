"""Shard units from ``auto_wrap_policy`` (against torch's own FSDP1 auto-wrap) and MMEngine's FSDP configs."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn
from torch.distributed.fsdp import CPUOffloadPolicy
from torch.distributed.fsdp.wrap import _recursive_wrap, size_based_auto_wrap_policy

from mm2lightning.lightning.fsdp_config import fsdp_strategy
from mm2lightning.lightning.fsdp_units import ShardPolicyError, shard_unit_names
from mm2lightning.lightning.runner_args import runner_strategy
from mm2lightning.model import BaseModel

from gan import make_gan_class


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))


class Tower(BaseModel):
    """An embedding, a stack of blocks and a head, plus a parameter of the model's own."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.blocks = nn.ModuleList(Block(16) for _ in range(3))
        self.head = nn.Linear(16, 5)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, tokens, mode="tensor"):
        return self.head(self.embed(tokens)) * self.scale


def torch_fsdp1_units(model: nn.Module, policy) -> list[str]:
    """The modules torch's FSDP1 auto-wrap would wrap (the root is wrapped by FSDP's constructor, not counted)."""
    wrapped = []

    def wrapper_cls(module, **kwargs):
        wrapped.append(module)
        return module

    _recursive_wrap(model, policy, wrapper_cls, ignored_modules=set(), ignored_params=set(), only_wrap_children=True)
    names = {id(m): name for name, m in model.named_modules()}
    return sorted(names[id(m)] for m in wrapped)


@pytest.mark.parametrize("min_num_params", [1, 600, 1200, 3000])
def test_size_based_policy_matches_torch_fsdp1(min_num_params):
    """MMEngine's config form (a function name with arguments) wraps what torch's FSDP1 wraps."""
    policy = dict(type="torch.distributed.fsdp.wrap.size_based_auto_wrap_policy", min_num_params=min_num_params)
    expected = torch_fsdp1_units(Tower(), functools.partial(size_based_auto_wrap_policy, min_num_params=min_num_params))
    if not expected:
        with pytest.raises(ShardPolicyError, match="matches no submodule"):
            shard_unit_names(Tower(), policy)
    else:
        assert sorted(shard_unit_names(Tower(), policy)) == expected


def test_module_classes_and_callables():
    assert shard_unit_names(Tower(), {Block}) == ["blocks.0", "blocks.1", "blocks.2"]
    assert shard_unit_names(Tower(), Block) == ["blocks.0", "blocks.1", "blocks.2"]
    assert shard_unit_names(Tower(), (nn.Linear, nn.Embedding)) == [
        "embed", "blocks.0.mlp.0", "blocks.0.mlp.2", "blocks.1.mlp.0", "blocks.1.mlp.2", "blocks.2.mlp.0",
        "blocks.2.mlp.2", "head",
    ]

    def heads_only(module, recurse, nonwrapped_numel):
        return recurse or module.__class__ is nn.Linear and module.out_features == 5

    assert shard_unit_names(Tower(), heads_only) == ["head"]


def test_default_policy_is_each_trainable_child():
    assert shard_unit_names(make_gan_class(BaseModel)()) == ["generator", "discriminator"]
    frozen = Tower()
    frozen.embed.requires_grad_(False)
    assert shard_unit_names(frozen) == ["blocks", "head"]  # data_preprocessor and frozen children stay whole


@pytest.mark.parametrize(
    "policy, match",
    [
        ({nn.Conv2d}, "matches no submodule"),
        ("no_such_policy_fn", "not registered"),
        ("torch.nn.no_such_fn", "cannot be imported"),
        (dict(min_num_params=1), "needs a 'type'"),
        (lambda module: True, r"takes \(module\)"),
        ({int}, "nn.Module subclasses"),
        (3, "must be None"),
    ],
)
def test_bad_policies_fail_by_name(policy, match):
    with pytest.raises(ShardPolicyError, match=match):
        shard_unit_names(Tower(), policy)


# ----------------------------------------------------------------------------------- MMEngine's configs
def test_flexible_runner_fsdp_strategy_config():
    strategy = runner_strategy(dict(strategy=dict(
        type="FSDPStrategy",
        model_wrapper=dict(
            auto_wrap_policy=dict(type="torch.distributed.fsdp.wrap.size_based_auto_wrap_policy", min_num_params=10),
            sharding_strategy="SHARD_GRAD_OP",
            cpu_offload=True,
            mixed_precision=dict(param_dtype="bfloat16", reduce_dtype="float32", buffer_dtype="float32"),
            use_orig_params=True,
        ),
        state_dict_cfg="full",
    )))
    assert strategy.strategy_name == "fsdp_mm"
    assert strategy.auto_wrap_policy["min_num_params"] == 10 and strategy.reshard_after_forward is False
    assert isinstance(strategy.offload_policy, CPUOffloadPolicy)
    assert (strategy.mp_policy.param_dtype, strategy.mp_policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert strategy._save_distributed_checkpoint is False  # 'full': one consolidated file


def test_model_wrapper_cfg_and_hybrid_sharding():
    strategy = runner_strategy(dict(model_wrapper_cfg=dict(type="MMFullyShardedDataParallel",
                                                           sharding_strategy="HYBRID_SHARD")))
    assert strategy.strategy_name == "fsdp_mm" and strategy.replicate_size == "auto"
    assert strategy.reshard_after_forward is None  # FULL_SHARD: torch's default resharding
    assert strategy._save_distributed_checkpoint  # MMEngine's 'local' default


@pytest.mark.parametrize(
    "cfg, match",
    [
        (dict(type="FSDPStrategy", activation_checkpointing=dict(check_fn="Block")), r"\['activation_checkpointing'\]"),
        (dict(type="FSDPStrategy", skip_init_weights=True), "skip_init_weights"),
        (dict(type="FSDPStrategy", state_dict_cfg="sharded_somehow"), "state_dict_cfg"),
        (dict(type="FSDPStrategy", model_wrapper=dict(sharding_strategy="NO_SHARD")), "NO_SHARD.*DDP"),
        (dict(type="FSDPStrategy", model_wrapper=dict(backward_prefetch="BACKWARD_PRE")), r"\['backward_prefetch'\]"),
        (dict(type="FSDPStrategy", model_wrapper=dict(mixed_precision=dict(param_dtype="float16",
                                                                           buffer_dtype="float16"))), "buffer_dtype"),
        (dict(type="FSDPStrategy", model_wrapper=dict(type="MyFSDP")), "MMFullyShardedDataParallel"),
        (dict(type="DeepSpeedStrategy"), "FSDPStrategy and DDPStrategy"),
    ],
)
def test_unsupported_options_fail_by_name(cfg, match):
    with pytest.raises(ValueError, match=match):
        runner_strategy(dict(strategy=cfg))


def test_use_orig_params_false_warns_that_it_has_no_meaning():
    with pytest.warns(UserWarning, match="use_orig_params=False has no meaning under FSDP2"):
        fsdp_strategy(dict(type="MMFullyShardedDataParallel", use_orig_params=False))


def test_fsdp1_objects_in_the_wrapper_config():
    """MMEngine's wrapper also takes FSDP1's own CPUOffload and MixedPrecision objects."""
    from torch.distributed.fsdp import CPUOffload, MixedPrecision

    strategy = fsdp_strategy(dict(type="MMFullyShardedDataParallel", cpu_offload=CPUOffload(offload_params=True),
                                  mixed_precision=MixedPrecision(param_dtype=torch.bfloat16)))
    assert isinstance(strategy.offload_policy, CPUOffloadPolicy)
    assert (strategy.mp_policy.param_dtype, strategy.mp_policy.reduce_dtype) == (torch.bfloat16, None)
    with pytest.raises(ValueError, match="keep_low_precision_grads=True has no FSDP2 counterpart"):
        fsdp_strategy(dict(type="MMFullyShardedDataParallel",
                           mixed_precision=MixedPrecision(param_dtype=torch.float16, keep_low_precision_grads=True)))
