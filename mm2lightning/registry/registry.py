"""``Registry``: config ``type`` names -> classes, with MMEngine's scopes, parents and import locations."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

from mm2lightning.registry.default_scope import MODULE2PACKAGE, DefaultScope

#: Scopes that name mm2lightning's own (root) registries: MMEngine's built-ins are ours.
ROOT_SCOPES = ("mmengine", "mm2lightning")


class RegistryError(KeyError):
    """A name is missing from a registry, or is registered twice."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class ToolboxNotInstalledError(RegistryError, ModuleNotFoundError):
    """A config's scope names an OpenMMLab toolbox that is not installed."""

    def __init__(self, scope: str) -> None:
        package = MODULE2PACKAGE.get(scope, scope)
        super().__init__(
            f"the scope {scope!r} (default_scope or a '{scope}.' type prefix) needs the toolbox package "
            f"{scope!r}, which is not installed: install it with `pip install {package}` "
            f"({scope} is not installed and its modules will not be registered)"
        )


class Registry:
    """A name -> class (or function) mapping with a ``build`` method, as ``mmengine.registry.Registry``.

    Registries form trees: a toolbox's registry names a ``parent`` (one of mm2lightning's root registries,
    such as :data:`~mm2lightning.registry.MODELS`) and a ``scope`` (its package name). ``get`` looks in the
    registry, then its ancestors; ``'scope.Name'`` looks in the registry of that scope; ``build`` resolves
    names in the current :class:`DefaultScope` (or a config's ``_scope_``). The registries of a toolbox
    built on MMEngine's registries (``mmpretrain``, ``mmdet``, ...) join mm2lightning's trees when their
    scope is first used (see :mod:`mm2lightning.registry.toolbox`).

    Args:
        name: What the registry holds, used in error messages (e.g. ``'model'``).
        build_func: Builds an object from a config dict. Defaults to the parent's, else
            :func:`~mm2lightning.registry.build_from_cfg`.
        parent: The registry whose names this one falls back to.
        scope: The registry's scope. Defaults to the top-level package of the module creating it.
        locations: Modules imported on the first lookup, where the registry's classes are registered.
    """

    def __init__(
        self,
        name: str,
        build_func: Callable[..., Any] | None = None,
        parent: Registry | None = None,
        scope: str | None = None,
        locations: list[str] | tuple[str, ...] = (),
    ) -> None:
        from mm2lightning.registry.build_functions import build_from_cfg

        if scope is not None and not isinstance(scope, str):
            raise AssertionError(f"scope must be a str, but got {type(scope)}")
        if parent is not None and not isinstance(parent, Registry):
            raise AssertionError(f"parent must be a Registry, but got {type(parent)}")
        self._name = name
        self._module_dict: dict[str, Any] = {}
        self._children: dict[str, Registry] = {}
        self._locations = list(locations)
        self._imported = False
        self._scope = scope if scope is not None else _infer_scope()
        self.parent = parent
        if parent is not None:
            parent._add_child(self)
        self.build_func: Callable[..., Any] = build_func or (parent.build_func if parent else build_from_cfg)

    @property
    def name(self) -> str:
        return self._name

    @property
    def scope(self) -> str:
        return self._scope

    @property
    def module_dict(self) -> dict[str, Any]:
        return self._module_dict

    @property
    def children(self) -> dict[str, Registry]:
        return self._children

    @property
    def root(self) -> Registry:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def __len__(self) -> int:
        return len(self._module_dict)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __repr__(self) -> str:
        return f"Registry(name={self._name!r}, scope={self._scope!r}, items={sorted(self._module_dict)})"

    @staticmethod
    def split_scope_key(key: str) -> tuple[str | None, str]:
        """Split ``'scope.Name'`` into ``('scope', 'Name')``; ``'Name'`` gives ``(None, 'Name')``."""
        scope, dot, name = key.partition(".")
        return (scope, name) if dot else (None, key)

    def _add_child(self, registry: Registry) -> None:
        if registry.scope in self._children:
            raise AssertionError(f"scope {registry.scope} exists in {self.name} registry")
        self._children[registry.scope] = registry

    def _search_child(self, scope: str) -> Registry | None:
        """Depth-first search of this registry and its descendants for the one of ``scope``."""
        if self._scope == scope:
            return self
        for child in self._children.values():
            found = child._search_child(scope)
            if found is not None:
                return found
        return None

    def _is_scope(self, scope: str) -> bool:
        return scope == self._scope or (self.parent is None and scope in ROOT_SCOPES)

    def import_from_location(self) -> None:
        """Import the modules in ``locations`` once (or ``<scope>.utils.register_all_modules`` for an
        OpenMMLab toolbox that names none), so their classes are registered."""
        if self._imported:
            return
        self._imported = True
        if not self._locations and self._scope in MODULE2PACKAGE:
            try:
                utils = importlib.import_module(f"{self._scope}.utils")
            except ImportError:
                return
            utils.register_all_modules(False)
        for location in self._locations:
            importlib.import_module(location)

    def _own(self, name: str) -> Any | None:
        """The entry registered here under ``name`` (no ancestors)."""
        return self._module_dict.get(name)

    def _last_resort(self, name: str) -> Any | None:
        """Where an unscoped name is looked up after every ancestor."""
        return None

    def get(self, key: str) -> Any | None:
        """Return the class registered under ``key``, or ``None``.

        ``'Name'`` is looked up here, then in the ancestors; ``'scope.Name'`` in the registry of that
        scope; a dotted import path (``'torch.nn.Linear'``) that no registry holds is imported.
        """
        if not isinstance(key, str):
            raise TypeError(f"The key argument of `Registry.get` must be a str, got {type(key)}")
        scope, name = self.split_scope_key(key)
        obj = None
        if scope is None or self._is_scope(scope):
            node: Registry | None = self
            while obj is None and node is not None:
                node.import_from_location()
                obj = node._own(name)
                node = node.parent if scope is None else None
            if obj is None and scope is None:
                obj = self._last_resort(name)
        else:  # as MMEngine: a child of this registry, or the root and its children
            registry = self._children.get(scope)
            if registry is None:
                found = self.root.registry_of_scope(scope)
                registry = found if found is not None and (found.parent is None or found.parent is self.root) else None
            if registry is not None:
                obj = registry.get(name)
        if obj is None and scope is not None:
            obj = _object_from_string(key)
        return obj

    def registry_of_scope(self, scope: str) -> Registry | None:
        """The registry of ``scope`` in this registry's tree (its package's ``registry`` module is imported
        first; a toolbox on MMEngine's registries joins the tree), or ``None``."""
        root = self.root
        if scope in ROOT_SCOPES:
            return root
        found = root._search_child(scope)
        if found is None:
            try:
                importlib.import_module(f"{scope}.registry")
            except ImportError:
                return None
            found = root._search_child(scope)
        if found is None:
            from mm2lightning.registry.toolbox import mirror_toolbox_registry

            found = mirror_toolbox_registry(root, scope)
        return found

    @contextmanager
    def switch_scope_and_registry(self, scope: str | None) -> Iterator[Registry]:
        """Make ``scope`` (or, for ``None``, the current default scope) current and yield its registry.

        Raises:
            ToolboxNotInstalledError: The scope is an OpenMMLab toolbox that is not installed.
        """
        with ExitStack() as stack:
            stack.enter_context(DefaultScope.overwrite_default_scope(scope))
            current = DefaultScope.get_current_instance()
            registry = self
            if current is not None:
                found = self.registry_of_scope(current.scope_name)
                if found is not None:
                    registry = found
                    stack.enter_context(found.scope_context())
                else:
                    warn_unknown_scope(current.scope_name, self)
            yield registry

    @contextmanager
    def scope_context(self) -> Iterator[None]:
        """What building in this registry's scope needs besides mm2lightning's default scope (nothing here;
        a toolbox on MMEngine also sets MMEngine's)."""
        yield

    def describe_search(self, key: str) -> str:
        """Where :meth:`get` looks for ``key``, for error messages."""
        scope, _ = self.split_scope_key(key)
        if scope is not None and not self._is_scope(scope):
            registry = self.root.registry_of_scope(scope)
            return registry.describe_search(key) if registry is not None else f"no registry of scope {scope!r}"
        chain, node = [], self
        while node is not None:
            chain.append(node._description())
            node = node.parent
        return ", then ".join(chain)

    def _description(self) -> str:
        if self.parent is None and self._scope in ROOT_SCOPES:
            return f"mm2lightning's {self._name!r} registry (MMEngine's built-in names)"
        located = f" (locations {self._locations})" if self._locations else ""
        return f"the {self._name!r} registry of scope {self._scope!r}{located}"

    def known_names(self) -> list[str]:
        """Every name :meth:`get` finds without a scope prefix."""
        names, node = set(), self
        while node is not None:
            names.update(node._module_dict)
            node = node.parent
        return sorted(names)

    def get_or_raise(self, key: str) -> Any:
        """Return the class registered under ``key`` in the current default scope's registry (as ``build``
        resolves it); raise a helpful :class:`RegistryError` if absent."""
        with self.switch_scope_and_registry(None) as registry:
            return registry._get_or_raise(key)

    def _get_or_raise(self, key: str) -> Any:
        obj = self.get(key)
        if obj is None:
            _, name = self.split_scope_key(key)
            close = difflib.get_close_matches(name, self.known_names(), n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
            current = DefaultScope.get_current_instance()
            in_scope = (
                f" (default scope {current.scope_name!r})"
                if current is not None and current.scope_name not in ROOT_SCOPES
                else ""
            )
            raise RegistryError(
                f"{key!r} is not registered in the {self._name!r} registry{in_scope}.{hint} "
                f"Searched: {self.describe_search(key)}. "
                f"({key} is not in the {self._name} registry. Please check whether the value of "
                f"`{key}` is correct or it was registered as expected.) "
                "Register it with `register_module()` (and import the module that defines it), "
                "or pass the class itself as `type`."
            )
        return obj

    def register_module(self, name: str | list[str] | None = None, force: bool = False, module: Any = None) -> Any:
        """Register a class or function, as a decorator or a call.

        Args:
            name: The name(s) to register under. Defaults to ``module.__name__``.
            force: Replace an existing entry of the same name instead of raising.
            module: The object to register. When ``None``, return a decorator.
        """
        if not isinstance(force, bool):
            raise TypeError(f"force must be a boolean, but got {type(force)}")
        if not (
            name is None
            or isinstance(name, str)
            or (isinstance(name, (list, tuple)) and all(isinstance(n, str) for n in name))
        ):
            raise TypeError(
                "name must be None, a str or a list of str (name must be None, an instance of str, "
                f"or a sequence of str), but got {type(name)}: {name!r}"
            )
        if module is not None:
            self._register(module, name, force)
            return module

        def decorator(obj: Any) -> Any:
            self._register(obj, name, force)
            return obj

        return decorator

    def _register(self, module: Any, name: str | list[str] | None, force: bool) -> None:
        if not callable(module):
            raise TypeError(
                f"only a class or function can be registered (module must be Callable, but got {type(module)}): "
                f"{module!r}"
            )
        names = [module.__name__] if name is None else [name] if isinstance(name, str) else list(name)
        for key in names:
            if not force and key in self._module_dict and self._module_dict[key] is not module:
                raise RegistryError(
                    f"{key} is already registered in {self._name} at {self._module_dict[key].__module__}: "
                    f"{key!r} is already registered in the {self._name!r} registry "
                    f"(by {self._module_dict[key]!r}); pass force=True to replace it."
                )
            self._module_dict[key] = module

    def build(self, cfg: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Build an object from ``cfg``; ``cfg['type']`` is a registered name or a class."""
        return self.build_func(cfg, *args, **kwargs, registry=self)


def _infer_scope() -> str:
    """The top-level package of the module that creates the registry (MMEngine's ``infer_scope``)."""
    frame = sys._getframe(2)  # _infer_scope <- Registry.__init__ <- the caller
    module = inspect.getmodule(frame)
    return module.__name__.split(".")[0] if module is not None and module.__name__ != "__main__" else "mmengine"


def _object_from_string(path: str) -> Any | None:
    """Import ``'package.module.Name'`` (MMEngine's ``get_object_from_string``), or ``None``."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


_warned_scopes: set[str] = set()


def warn_unknown_scope(scope: str, registry: Registry) -> None:
    """A scope without a registry of ``registry``'s kind: a missing toolbox is an error, a package without a
    ``registry`` module (or no package) a one-time warning."""
    if importlib.util.find_spec(scope) is None:
        if scope in MODULE2PACKAGE:
            raise ToolboxNotInstalledError(scope)
    elif importlib.util.find_spec(f"{scope}.registry") is not None:
        return  # a toolbox without a registry of this kind: MMEngine's built-in names (ours) serve
    if scope not in _warned_scopes:
        _warned_scopes.add(scope)
        warnings.warn(
            f"no registry of scope {scope!r} was found (no `{scope}.registry` module defines one); "
            f"mm2lightning's {registry.name!r} registry is used for it",
            UserWarning,
            stacklevel=4,
        )
