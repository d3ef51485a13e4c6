"""MMFSDPStrategy: a model sharded with FSDP2 (torch's ``fully_shard``), trained through its ``train_step``.

Lightning's ``FSDPStrategy`` (FSDP1) cannot run manual optimization: backward
runs inside the wrapped LightningModule's forward. FSDP2 shards parameters
per submodule with hooks, so gradients are reduce-scattered wherever backward
is called, and ``train_step`` with its optim wrappers runs unchanged. This
strategy is Lightning's ``ModelParallelStrategy`` (process group, launchers,
distributed checkpoints) with the sharding done for the model: the shard units
come from ``auto_wrap_policy``; the optim wrappers reach the sharding through
the backend seam (gradient sync blocked while accumulating), and clipping and
loss scaling over sharded (DTensor) gradients are torch's own: the norm is the
whole model's, and a float16 overflow in one rank's shard skips the step on
every rank (DTensor reduces the GradScaler's inf check across the mesh).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.fabric.plugins.collectives.torch_collective import default_pg_timeout
from lightning.fabric.utilities.optimizer import _optimizers_to_device
from lightning.pytorch.strategies import ModelParallelStrategy, StrategyRegistry
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, MixedPrecisionPolicy, OffloadPolicy, fully_shard
from torch.distributed.tensor import DTensor
from torch.distributed.utils import _sync_params_and_buffers

from mm2lightning.lightning.fsdp_units import WrapPolicy, shard_unit_names

PENDING_GRADS_FILE = "accumulated_grads_rank{rank}.pt"
_BROADCAST_BUCKET_BYTES = 250 * 1024 * 1024  # as DDP's initial broadcast
_MP_KEYS = ("param_dtype", "reduce_dtype", "output_dtype", "cast_forward_inputs")


def _dtype(value: Any, key: str) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    if isinstance(value, str) and isinstance(getattr(torch, value, None), torch.dtype):
        return getattr(torch, value)
    raise ValueError(f"mp_policy {key} must be a torch.dtype or its name (e.g. 'bfloat16'), but got {value!r}")


def mixed_precision_policy(mp_policy: MixedPrecisionPolicy | Mapping[str, Any] | None) -> MixedPrecisionPolicy:
    """A ``MixedPrecisionPolicy`` from itself, ``None`` (full precision) or a dict with dtype names."""
    if mp_policy is None:
        return MixedPrecisionPolicy()
    if isinstance(mp_policy, MixedPrecisionPolicy):
        return mp_policy
    if not isinstance(mp_policy, Mapping):
        raise TypeError(f"mp_policy must be a MixedPrecisionPolicy or a dict of its fields, but got {mp_policy!r}")
    unknown = sorted(set(mp_policy) - set(_MP_KEYS))
    if unknown:
        hint = " (FSDP2 keeps buffers in their own dtype)" if "buffer_dtype" in unknown else ""
        raise ValueError(f"mp_policy takes {list(_MP_KEYS)}, but got {unknown}{hint}")
    return MixedPrecisionPolicy(**{k: _dtype(v, k) if k != "cast_forward_inputs" else v for k, v in mp_policy.items()})


class MMFSDPStrategy(ModelParallelStrategy):
    """Shards an ``MMLightningModule``'s model with FSDP2 and trains it through ``train_step``.

    Registered in Lightning as ``strategy='fsdp_mm'``. Each rank holds a shard of
    every unit's parameters, gradients and optimizer state; a unit's parameters
    are gathered for its forward and backward. Optim wrappers work as under DDP:
    while one accumulates, no reduce-scatter runs until the window's last
    micro-batch; ``clip_grad`` clips by the norm of the whole (sharded) gradient;
    an ``AmpOptimWrapper``'s float16 scaler agrees across ranks on skipped steps
    (``use_fsdp=True``, MMEngine's ``ShardedGradScaler``, works too); an
    ``OptimWrapperDict``'s parts shard as separate units (the default policy).

    Args:
        auto_wrap_policy: Which submodules become shard units. ``None``: each direct
            child of the model with trainable parameters. Or a module class or set
            of them, a torch FSDP1-style callable ``(module, recurse,
            nonwrapped_numel) -> bool``, or MMEngine's config forms (a function name,
            ``dict(type='torch.distributed.fsdp.wrap.size_based_auto_wrap_policy',
            min_num_params=...)``). Parameters left outside every unit (the model's
            own) make the model a unit too, called through its forward.
        reshard_after_forward: ``None`` (torch's default, FSDP's ``FULL_SHARD``): a unit frees its gathered
            parameters after forward and gathers them again for backward, except a unit that is not inside
            another (a root), which keeps them from forward to backward. ``True``: every unit frees them (the
            lowest peak memory, one all-gather more per root unit). ``False``: no unit frees them
            (``SHARD_GRAD_OP``: the fewest all-gathers, whole units at the peak).
        mp_policy: A ``MixedPrecisionPolicy`` or a dict of its fields with dtype names
            (``dict(param_dtype='bfloat16', reduce_dtype='float32')``).
        cpu_offload: Keep sharded parameters, gradients and optimizer state on the CPU
            (``True`` or a ``CPUOffloadPolicy``); on a CPU device, not in pinned memory (which needs an
            accelerator).
        replicate_size: Hybrid sharding (HSDP): the number of replica groups; each
            group of ``world_size / replicate_size`` ranks shards the model, and the
            groups all-reduce. ``'auto'``: one group per node. ``1``: plain sharding.
        save_distributed_checkpoint: Save each rank's shard (a checkpoint folder) or,
            if ``False``, the full state gathered to rank 0 (one file).
        process_group_backend: ``'gloo'``, ``'nccl'``, ... (default: the device's).
        timeout: The process group's timeout.
    """

    strategy_name = "fsdp_mm"

    def __init__(
        self,
        auto_wrap_policy: WrapPolicy = None,
        reshard_after_forward: bool | None = None,
        mp_policy: MixedPrecisionPolicy | Mapping[str, Any] | None = None,
        cpu_offload: bool | OffloadPolicy = False,
        replicate_size: int | Literal["auto"] = 1,
        save_distributed_checkpoint: bool = True,
        process_group_backend: str | None = None,
        timeout: timedelta | None = default_pg_timeout,
    ) -> None:
        super().__init__(
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
            timeout=timeout,
        )
        if not (replicate_size == "auto" or (isinstance(replicate_size, int) and replicate_size >= 1)):
            raise ValueError(f"replicate_size must be a positive integer or 'auto', but got {replicate_size!r}")
        if not isinstance(reshard_after_forward, (bool, type(None))):
            raise TypeError(f"reshard_after_forward must be None, True or False, but got {reshard_after_forward!r}")
        self.auto_wrap_policy = auto_wrap_policy
        self.reshard_after_forward = reshard_after_forward
        self.mp_policy = mixed_precision_policy(mp_policy)
        if isinstance(cpu_offload, bool):
            cpu_offload = CPUOffloadPolicy() if cpu_offload else OffloadPolicy()
        if not isinstance(cpu_offload, OffloadPolicy):
            raise TypeError(f"cpu_offload must be a bool or a CPUOffloadPolicy, but got {cpu_offload!r}")
        self.offload_policy = cpu_offload
        self.replicate_size = replicate_size
        self.shard_units: dict[str, FSDPModule] = {}
        self._sync_blocked = 0

    # ------------------------------------------------------------ processes
    def setup_environment(self) -> None:
        self._setup_distributed()
        replicate = self.num_nodes if self.replicate_size == "auto" else self.replicate_size
        if self.world_size % replicate:
            raise ValueError(f"replicate_size={replicate} does not divide the world size {self.world_size}")
        device = self.root_device.type
        if replicate == 1:
            mesh = init_device_mesh(device, (self.world_size,), mesh_dim_names=("shard",))
        else:
            mesh = init_device_mesh(
                device, (replicate, self.world_size // replicate), mesh_dim_names=("replicate", "shard")
            )
        self._device_mesh = mesh
        self.lightning_module._device_mesh = mesh

    @property
    def distributed_sampler_kwargs(self) -> dict[str, Any]:
        """Every rank trains on its own data (all ranks are data-parallel, sharded or replicated)."""
        return {"num_replicas": self.world_size, "rank": self.global_rank}

    # ---------------------------------------------------------------- model
    def setup(self, trainer: pl.Trainer) -> None:
        from mm2lightning.lightning.module import MMLightningModule

        module = self.lightning_module
        if not isinstance(module, MMLightningModule):
            raise TypeError(
                f"strategy='fsdp_mm' ({type(self).__name__}) shards an MMLightningModule's model, but got "
                f"{type(module).__name__}; for other LightningModules use Lightning's ModelParallelStrategy"
            )
        if trainer.precision == "16-mixed":
            raise MisconfigurationException(
                "strategy='fsdp_mm' does not take Trainer(precision='16-mixed') (Lightning's ModelParallelStrategy "
                "refuses it too): for float16 with loss scaling use optim_wrapper=dict(type='AmpOptimWrapper', "
                "dtype='float16'), or shard in low precision with MMFSDPStrategy(mp_policy=dict(param_dtype="
                "'bfloat16'))"
            )
        self.accelerator.setup(trainer)
        if not self.shard_units:  # a later fit/validate/test reuses the sharded model
            self.shard_units = self._shard(module.model)
        self.model = self.precision_plugin.convert_module(self.model)
        self.barrier()
        if trainer.state.fn == TrainerFn.FITTING:
            self.setup_optimizers(trainer)
        self.setup_precision_plugin()
        if trainer.state.fn == TrainerFn.FITTING:
            _optimizers_to_device(self.optimizers, self.root_device)

    def _shard(self, model: nn.Module) -> dict[str, FSDPModule]:
        """Shard the units one at a time on the device (the peak is one unsharded unit, not the model), from rank
        0's weights as DDP starts (each rank then keeps its shard of them); the rest follows, whole."""
        names = shard_unit_names(model, self.auto_wrap_policy)
        kwargs = dict(
            mesh=self.device_mesh,
            reshard_after_forward=self.reshard_after_forward,
            mp_policy=self.mp_policy,
            offload_policy=self.offload_policy,
        )
        if self.root_device.type == "cpu" and isinstance(self.offload_policy, CPUOffloadPolicy):
            kwargs["offload_policy"] = CPUOffloadPolicy(pin_memory=False)  # pinning needs an accelerator
        units = {}
        for name in names:
            unit = model.get_submodule(name).to(self.root_device)
            self._broadcast(list(unit.parameters()))
            units[name] = fully_shard(unit, **kwargs)
        self.model_to_device()
        rest = [p for p in model.parameters() if not isinstance(p, DTensor)]
        self._broadcast(rest + list(model.buffers()))
        if rest:
            units[""] = fully_shard(model, **kwargs)  # parameters outside every unit: the model's forward gathers them
        return units

    @staticmethod
    def _broadcast(tensors: list[torch.Tensor]) -> None:
        _sync_params_and_buffers(dist.group.WORLD, [t.detach() for t in tensors], _BROADCAST_BUCKET_BYTES, src=0)

    # ------------------------------------------------ the optim wrappers' seam
    @contextmanager
    def block_backward_sync(self) -> Iterator[None]:
        """No reduce-scatter (nor HSDP all-reduce) in this context: gradients accumulate unsharded per rank."""
        self._sync_blocked += 1
        if self._sync_blocked == 1:
            for unit in self.shard_units.values():
                unit.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            self._sync_blocked -= 1
            if self._sync_blocked == 0:
                for unit in self.shard_units.values():
                    unit.set_requires_gradient_sync(True)

    def holds_unsynced_grads(self, optimizer: torch.optim.Optimizer) -> bool:
        """Whether a unit holding ``optimizer``'s parameters has unsharded gradients not yet reduce-scattered."""
        params = {id(p) for group in optimizer.param_groups for p in group["params"]}
        return any(
            id(param.sharded_param) in params
            for _, fsdp_params in _fsdp_params(self.lightning_module.model)
            for param, _ in _unsynced_grads(fsdp_params.values())
        )

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The model's full (unsharded) state dict with the model's own keys, on the CPU of every rank.

        A collective: every rank calls it. For a checkpoint of the full state in one file, use
        ``save_distributed_checkpoint=False`` (gathered to rank 0 only).
        """
        return {
            key: (value.full_tensor() if isinstance(value, DTensor) else value).detach().cpu()
            for key, value in self.lightning_module.model.state_dict().items()
        }

    # ---------------------------------------------------------- checkpoints
    def save_checkpoint(self, checkpoint: dict[str, Any], filepath: Any, storage_options: Any | None = None) -> None:
        """Lightning's sharded (or full) checkpoint, plus each rank's gradients of an unfinished accumulation window
        (in the checkpoint folder; a full checkpoint loses them on resume, with a warning, as under DDP)."""
        pending = _pending_grads(self.lightning_module.model) if self._save_distributed_checkpoint else {}
        super().save_checkpoint(checkpoint, filepath, storage_options)
        if pending:
            path = Path(self.broadcast(filepath))
            torch.save(pending, path / PENDING_GRADS_FILE.format(rank=self.global_rank))

    def load_checkpoint(self, checkpoint_path: Any, weights_only: bool | None = None) -> dict[str, Any]:
        checkpoint = super().load_checkpoint(checkpoint_path, weights_only=weights_only)
        path = Path(self.broadcast(checkpoint_path))
        grads_file = path / PENDING_GRADS_FILE.format(rank=self.global_rank)
        if path.is_dir() and grads_file.is_file():
            _restore_pending_grads(self.lightning_module.model, torch.load(grads_file, weights_only=True))
        return checkpoint


def _fsdp_params(model: nn.Module) -> Iterator[tuple[FSDPModule, dict[str, Any]]]:
    """Each FSDP module of ``model`` (outermost first) with its parameters' FSDP state (torch internals), keyed
    ``<module name>/<index>`` (FSDP's own names are relative to the unit that was lazily made the root)."""
    for name, module in model.named_modules():
        if isinstance(module, FSDPModule):
            group = module._get_fsdp_state()._fsdp_param_group
            yield module, {f"{name}/{i}": p for i, p in enumerate([] if group is None else group.fsdp_params)}


def _unsynced_grads(fsdp_params: Any) -> Iterator[tuple[Any, torch.Tensor]]:
    """The FSDP parameters holding unsharded gradients not yet reduce-scattered, with those gradients."""
    for param in fsdp_params:
        grad = param.unsharded_accumulated_grad
        if grad is None and hasattr(param, "_unsharded_param"):
            grad = param._unsharded_param.grad
        if grad is not None:
            yield param, grad


def _pending_grads(model: nn.Module) -> dict[str, torch.Tensor]:
    """This rank's unsharded gradients not yet reduce-scattered (inside an accumulation window), by parameter."""
    pending = {}
    for _, fsdp_params in _fsdp_params(model):
        keys = {id(param): key for key, param in fsdp_params.items()}
        for param, grad in _unsynced_grads(fsdp_params.values()):
            pending[keys[id(param)]] = grad.detach().cpu()
    return pending


def _restore_pending_grads(model: nn.Module, pending: Mapping[str, torch.Tensor]) -> None:
    """Put back what :func:`_pending_grads` saved: the next backward accumulates onto it, as if never stopped."""
    restored = set()
    for module, fsdp_params in _fsdp_params(model):
        module.unshard()  # creates the unsharded parameters the grads belong to
        for key, param in fsdp_params.items():
            grad = pending.get(key)
            if grad is not None:
                grad = grad.to(param._unsharded_param.device)
                if grad.dtype == param._unsharded_param.dtype:
                    param._unsharded_param.grad = grad
                else:  # kept in the reduce dtype, as FSDP does
                    param.unsharded_accumulated_grad = grad
                restored.add(key)
        module.reshard()
    missing = sorted(set(pending) - restored)
    if missing:
        raise RuntimeError(f"the checkpoint's accumulated gradients of {missing} match no sharded parameter")


def _register() -> None:
    if MMFSDPStrategy.strategy_name not in StrategyRegistry:
        StrategyRegistry.register(
            MMFSDPStrategy.strategy_name, MMFSDPStrategy, description="FSDP2 sharding under train_step (mm2lightning)"
        )


_register()
