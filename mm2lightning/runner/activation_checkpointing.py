"""MMEngine's ``cfg.activation_checkpointing``: named submodules recompute their activations in the backward."""

from __future__ import annotations

import functools
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from torch import nn
from torch.utils.checkpoint import checkpoint


def turn_on_activation_checkpointing(model: nn.Module, modules: str | list[str]) -> None:
    """Wrap the ``forward`` of each named submodule (``'backbone.layer1'``) of ``model`` in
    ``torch.utils.checkpoint``: its activations are not kept, but recomputed in the backward, as MMEngine's.

    The non-reentrant checkpoint is used (MMEngine's call takes torch's old default, the reentrant one): the
    gradients are the same, also for a submodule whose inputs need no gradient (where the reentrant variant
    gives its parameters none), and keyword arguments pass through.

    Raises:
        AttributeError: A name that is not a submodule of ``model``.
    """
    for name in [modules] if isinstance(modules, str) else list(modules):
        module = attrgetter(name)(model)
        module.forward = _checkpointed(module.forward)


def _checkpointed(forward: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(forward)
    def checkpointed_forward(*args: Any, **kwargs: Any) -> Any:
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return checkpointed_forward
