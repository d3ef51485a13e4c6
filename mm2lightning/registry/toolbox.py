"""Toolboxes built on MMEngine's registries (mmpretrain, mmdet, ...) seen from mm2lightning's registries.

An OpenMMLab toolbox registers its classes in registries that are children of ``mmengine.registry``'s
roots (``mmpretrain.registry.MODELS = Registry('model', parent=mmengine.registry.MODELS, ...)``). When a
scope is first used, :func:`mirror_toolbox_registry` adds a :class:`ToolboxRegistry` for it under
mm2lightning's root of the same kind. A name then resolves, as in MMEngine, in the toolbox's registry and
its toolbox ancestors (importing its ``locations``), then in mm2lightning's root (MMEngine's built-in names
are mm2lightning's implementations), then in MMEngine's root (what other packages registered there).

mmengine is imported only here, and only when a scope other than mm2lightning's own is in play.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mm2lightning.registry.registry import Registry

#: mm2lightning registry name -> the attribute of ``mmengine.registry`` holding MMEngine's root of that kind.
MMENGINE_ROOTS: dict[str, str] = {
    "model": "MODELS",
    "model wrapper": "MODEL_WRAPPERS",
    "optimizer": "OPTIMIZERS",
    "optimizer wrapper": "OPTIM_WRAPPERS",
    "optimizer wrapper constructor": "OPTIM_WRAPPER_CONSTRUCTORS",
    "parameter scheduler": "PARAM_SCHEDULERS",
    "metric": "METRICS",
    "evaluator": "EVALUATOR",
    "dataset": "DATASETS",
    "data sampler": "DATA_SAMPLERS",
    "transform": "TRANSFORMS",
    "function": "FUNCTIONS",
    "hook": "HOOKS",
    "loop": "LOOPS",
    "weight initializer": "WEIGHT_INITIALIZERS",
    "visualizer": "VISUALIZERS",
    "vis_backend": "VISBACKENDS",
    "log_processor": "LOG_PROCESSORS",
    "task util": "TASK_UTILS",
}


class ToolboxRegistry(Registry):
    """mm2lightning's view of one toolbox registry that lives in MMEngine's registry tree.

    Args:
        parent: mm2lightning's root registry of the same kind.
        theirs: The toolbox's ``mmengine.registry.Registry`` (e.g. ``mmpretrain.registry.MODELS``).
    """

    def __init__(self, parent: Registry, theirs: Any) -> None:
        super().__init__(parent.name, parent=parent, scope=theirs.scope)
        self._theirs = theirs

    def import_from_location(self) -> None:
        self._theirs.import_from_location()

    def _toolbox_chain(self) -> Iterator[Any]:
        """The toolbox registry and its ancestors below MMEngine's root."""
        node = self._theirs
        while node.parent is not None:
            yield node
            node = node.parent

    def _own(self, name: str) -> Any | None:
        if name in self._module_dict:
            return self._module_dict[name]
        for node in self._toolbox_chain():
            if name in node.module_dict:
                return node.module_dict[name]
        return None

    def _last_resort(self, name: str) -> Any | None:
        return self._theirs.root.module_dict.get(name)

    @contextmanager
    def scope_context(self) -> Iterator[None]:
        """Building in a toolbox's scope also sets MMEngine's default scope: the toolbox's own code builds
        its submodules, transforms, ... through MMEngine's registries."""
        from mmengine.registry import DefaultScope as MMEngineDefaultScope

        with MMEngineDefaultScope.overwrite_default_scope(self.scope):
            yield

    def describe_search(self, key: str) -> str:
        scope, _ = self.split_scope_key(key)
        if scope is not None and scope != self.scope:
            return super().describe_search(key)
        places = [
            f"the {node.name!r} registry of scope {node.scope!r} (mmengine registry tree"
            + (f", locations {list(node._locations)})" if node._locations else ")")
            for node in self._toolbox_chain()
        ]
        places.append(self.parent._description() if self.parent else "")
        places.append(f"mmengine's root {self._theirs.root.name!r} registry")
        return ", then ".join(places)

    def known_names(self) -> list[str]:
        names = set(super().known_names()) | set(self._theirs.root.module_dict)
        for node in self._toolbox_chain():
            names.update(node.module_dict)
        return sorted(names)


def mirror_toolbox_registry(root: Registry, scope: str) -> ToolboxRegistry | None:
    """Add under ``root`` the view of the MMEngine registry of ``scope`` and kind ``root.name``, if there is one.

    The toolbox's ``<scope>.registry`` module must already be imported (it adds its registries to MMEngine's
    trees). Returns ``None`` when mmengine is not installed or no toolbox registry of that scope exists.
    """
    attr = MMENGINE_ROOTS.get(root.name)
    if attr is None or importlib.util.find_spec("mmengine") is None:
        return None
    import mmengine.registry

    theirs = getattr(mmengine.registry, attr)._search_child(scope)
    if theirs is None or theirs.parent is None:
        return None
    return ToolboxRegistry(root, theirs)
