"""What a Lightning checkpoint lacks for an exact resume: optim-wrapper extras and parameter schedulers.

Lightning already saves the model, the raw optimizers and the loops; the
``mm2lightning`` checkpoint entry adds, per wrapper, the accumulation count,
the GradScaler state and the schedulers' base group (``base_param_settings``),
plus every parameter scheduler's state. A checkpoint taken in the middle of an
accumulation window also holds the gradients accumulated so far (single process
only: with several processes they differ per rank, and, as in MMEngine, the
interrupted window's gradients are lost on resume, with a warning).
"""

from __future__ import annotations

from typing import Any

from mm2lightning.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict

CHECKPOINT_KEY = "mm2lightning"

Schedulers = list[Any] | dict[str, list[Any]]


def _named(optim_wrapper: OptimWrapper) -> dict[str, OptimWrapper]:
    if isinstance(optim_wrapper, OptimWrapperDict):
        return dict(optim_wrapper.items())
    return {"": optim_wrapper}


def _params(wrapper: OptimWrapper) -> list[Any]:
    return [p for group in wrapper.optimizer.param_groups for p in group["params"]]


def _wrapper_state(wrapper: OptimWrapper, save_grads: bool) -> dict[str, Any]:
    state: dict[str, Any] = {"inner_count": wrapper.inner_count}
    if save_grads and not wrapper.should_update():  # mid-window: gradients are waiting for the step
        state["grads"] = [None if p.grad is None else p.grad.detach().cpu() for p in _params(wrapper)]
    if wrapper.base_param_settings is not None:
        state["base_param_settings"] = wrapper.base_param_settings
    if isinstance(wrapper, AmpOptimWrapper) and wrapper.loss_scaler is not None:
        state["loss_scaler"] = wrapper.loss_scaler.state_dict()
    return state


def _load_wrapper_state(wrapper: OptimWrapper, state: dict[str, Any]) -> None:
    wrapper._inner_count = state["inner_count"]
    if "optimizer" in state:  # from an MMEngine checkpoint (Lightning's own checkpoints restore the optimizers)
        wrapper.optimizer.load_state_dict(state["optimizer"])
    if "base_param_settings" in state:
        wrapper.base_param_settings = state["base_param_settings"]
    if "loss_scaler" in state and isinstance(wrapper, AmpOptimWrapper) and wrapper.loss_scaler is not None:
        wrapper.loss_scaler.load_state_dict(state["loss_scaler"])
    for param, grad in zip(_params(wrapper), state.get("grads", [])):
        param.grad = None if grad is None else grad.to(param.device)


def _scheduler_states(schedulers: Schedulers) -> Any:
    if isinstance(schedulers, dict):
        return {name: [s.state_dict() for s in group] for name, group in schedulers.items()}
    return [s.state_dict() for s in schedulers]


def dump_training_state(
    optim_wrapper: OptimWrapper, schedulers: Schedulers | None, save_grads: bool
) -> dict[str, Any]:
    """The extra state to store under ``checkpoint['mm2lightning']``.

    Args:
        optim_wrapper: The run's wrapper(s).
        schedulers: The run's parameter schedulers; ``None``: not saved (MMEngine's
            ``CheckpointHook(save_param_scheduler=False)``).
        save_grads: Store the gradients of an unfinished accumulation window.
    """
    state = {"optim_wrapper": {name: _wrapper_state(w, save_grads) for name, w in _named(optim_wrapper).items()}}
    if schedulers is not None:
        state["param_schedulers"] = _scheduler_states(schedulers)
    return state


def load_training_state(optim_wrapper: OptimWrapper, schedulers: Schedulers, state: dict[str, Any]) -> None:
    """Restore what :func:`dump_training_state` stored, checking that the run's layout matches. Without saved
    schedulers the run's stay as built, as in MMEngine's resume."""
    wrappers = _named(optim_wrapper)
    saved = state["optim_wrapper"]
    if set(saved) != set(wrappers):
        raise ValueError(
            f"the checkpoint holds optim wrappers {sorted(saved)} but this run has {sorted(wrappers)}; "
            "resume with the same optim_wrapper configuration"
        )
    for name, wrapper in wrappers.items():
        _load_wrapper_state(wrapper, saved[name])
    saved_schedulers = state.get("param_schedulers")
    if saved_schedulers is None:
        return
    pairs = (
        [(schedulers[name], saved_schedulers.get(name, [])) for name in schedulers]
        if isinstance(schedulers, dict)
        else [(schedulers, saved_schedulers)]
    )
    for group, group_states in pairs:
        if len(group) != len(group_states):
            raise ValueError(
                f"the checkpoint holds {len(group_states)} parameter scheduler(s) where this run builds "
                f"{len(group)}; resume with the same param_scheduler configuration"
            )
        for scheduler, scheduler_state in zip(group, group_states):
            scheduler.load_state_dict(scheduler_state)
