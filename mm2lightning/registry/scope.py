"""Making a scope current: ``init_default_scope`` and the Runner's ``default_scope``."""

from __future__ import annotations

import itertools
import warnings

from mm2lightning.registry.default_scope import DefaultScope
from mm2lightning.registry.registry import ROOT_SCOPES, ToolboxNotInstalledError, warn_unknown_scope
from mm2lightning.registry.root import MODELS
from mm2lightning.registry.toolbox import ToolboxRegistry

_forced = itertools.count()


def check_scope(scope: str) -> bool:
    """Import ``scope``'s registries; return whether they live in MMEngine's registry tree.

    Raises:
        ToolboxNotInstalledError: ``scope`` is an OpenMMLab toolbox that is not installed.
    """
    if scope in ROOT_SCOPES:
        return False
    registry = MODELS.registry_of_scope(scope)
    if registry is None:
        warn_unknown_scope(scope, MODELS)
    return isinstance(registry, ToolboxRegistry)


def activate_scope(instance_name: str, scope: str) -> DefaultScope:
    """Make ``scope`` current through a new :class:`DefaultScope` named ``instance_name`` (suffixed when taken),
    and MMEngine's too for a toolbox on MMEngine's registries (its own code builds through them), as
    MMEngine's Runner does."""
    if DefaultScope.check_instance_created(instance_name):  # a new instance, so that it is the current one
        instance_name = f"{instance_name}-{next(_forced)}"
    if check_scope(scope):
        from mmengine.registry import DefaultScope as MMEngineDefaultScope

        MMEngineDefaultScope.get_instance(instance_name, scope_name=scope)
    return DefaultScope.get_instance(instance_name, scope_name=scope)


def init_default_scope(scope: str) -> None:
    """Make ``scope`` the default scope, as ``mmengine.registry.init_default_scope``.

    Raises:
        ToolboxNotInstalledError: ``scope`` is an OpenMMLab toolbox that is not installed.
    """
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created(scope):
        activate_scope(scope, scope)
    elif current.scope_name != scope:
        warnings.warn(
            f'The current default scope "{current.scope_name}" is not "{scope}", `init_default_scope` will force '
            f'set the current default scope to "{scope}".',
            UserWarning,
            stacklevel=2,
        )
        activate_scope(f"{scope}-{next(_forced)}", scope)


__all__ = ["ToolboxNotInstalledError", "activate_scope", "check_scope", "init_default_scope"]
