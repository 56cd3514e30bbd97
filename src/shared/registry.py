"""One plug-in mechanism: a registry per kind (sources, extractors, samplers, sinks, metrics).

A plug-in is registered by its kind's decorator (`@register_sink("jsonl")`, `@metric(key=...)`),
built-in or not. A registry finds a name in this order (docs/plugins.md):

1. plug-ins registered already (a decorator ran: built-ins imported, `plugins:` modules);
2. built-ins known by module: one per key (`register_lazy`), or a package holding a kind's whole
   catalogue (`builtin_modules`, the metrics). Importing the module runs its decorators, so
   evalmon starts without importing every source's SDK, and the core never imports its catalogue;
3. installed packages: the `evalmon.plugins` entry points, each a module whose import registers
   its plug-ins. Loaded once per process, lazily: the first time a registry meets a name it does
   not know, or lists its keys;
4. a dotted path (`package.module:attr`), imported directly.

An unknown name is a ConfigError listing the valid keys, led by the closest ones ("did you mean").
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from shared.errors import ConfigError

__all__ = [
    "ENTRY_POINT_GROUP",
    "Registry",
    "did_you_mean",
    "import_dotted",
    "load_installed_plugins",
    "looks_dotted",
    "validate_params",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
P = TypeVar("P", bound=BaseModel)
ENTRY_POINT_GROUP = "evalmon.plugins"


def import_dotted(path: str, *, field: str | None = None) -> Any:
    """Import `package.module:attr` (or `package.module.attr`)."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"'{path}' is not a dotted path like 'package.module:name'", field=field)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module '{module_name}' ({exc})", field=field) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"module '{module_name}' has no attribute '{attr}'", field=field) from None


def looks_dotted(name: str) -> bool:
    return ":" in name or "." in name


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """The hint after an unknown name: `; did you mean 'x'?` for the closest choice (difflib), else ''."""
    close = difflib.get_close_matches(name, sorted(set(choices)), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


@dataclass
class InstalledPlugins:
    """The `evalmon.plugins` entry points of this process: loaded at most once."""

    loaded: list[str] = field(default_factory=list)  # "name = value" of each entry point imported
    failed: dict[str, str] = field(default_factory=dict)  # entry point name -> why it did not load
    done: bool = False


_installed = InstalledPlugins()


def load_installed_plugins() -> InstalledPlugins:
    """Import every `evalmon.plugins` entry point, once per process; a broken one is logged and skipped.

    A plug-in package that fails to import must not stop monitors that do not use it: the failure
    is kept and shown when a name cannot be found (it is probably that package's).
    """
    if _installed.done:
        return _installed
    _installed.done = True  # first: a plug-in module that itself lists a registry must not recurse
    for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        try:
            entry_point.load()
        except Exception as exc:  # any error in third-party code: report it, keep the others
            _installed.failed[entry_point.name] = f"{type(exc).__name__}: {exc}"
            log.warning("evalmon plug-in %r (%s) failed to load: %s", entry_point.name, entry_point.value, exc)
        else:
            _installed.loaded.append(f"{entry_point.name} = {entry_point.value}")
    return _installed


class Registry(Generic[T]):
    """The named plug-ins of one kind, with the decorator that registers one.

    `reserved` names are handled by the caller (the extractor's `default`): they cannot be
    registered and are listed among the valid keys. `builtin_modules` are imported (once) before
    the first lookup of a name not registered yet, or the first listing.
    """

    def __init__(self, kind: str, *, reserved: Iterable[str] = (), builtin_modules: Iterable[str] = ()) -> None:
        self.kind = kind
        self.reserved = frozenset(reserved)
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._builtin_modules = tuple(builtin_modules)
        self._builtins_loaded = not self._builtin_modules

    def register(self, key: str, value: T) -> T:
        """Register `value` under `key`; the same plug-in registering twice (a re-import) is fine."""
        if not key or ":" in key or key != key.strip():
            raise ValueError(f"{self.kind} key {key!r} must be a non-empty name without ':' or surrounding spaces")
        if key in self.reserved:
            raise ValueError(f"{self.kind} '{key}' is reserved by evalmon")
        existing = self._items.get(key)
        if existing is not None and existing is not value and _qualname(existing) != _qualname(value):
            raise ValueError(f"{self.kind} '{key}' is already registered by {_qualname(existing)}")
        self._items[key] = value
        return value

    def register_lazy(self, key: str, where: str) -> None:
        """Where a built-in lives, imported on first use: a module whose decorator registers `key`,
        or a `module:attr` dotted path to register."""
        self._lazy.setdefault(key, where)

    def load_builtins(self) -> None:
        """Import the `builtin_modules` (their decorators register this kind's built-ins), once."""
        if self._builtins_loaded:
            return
        self._builtins_loaded = True  # first: a built-in module that looks a name up must not recurse
        for module in self._builtin_modules:
            importlib.import_module(module)

    def decorator(self, key: str) -> Callable[[T], T]:
        """`@registry.decorator("name")`: register the decorated class or function."""

        def wrap(value: T) -> T:
            return self.register(key, value)

        return wrap

    def keys(self) -> list[str]:
        """Every valid name, installed plug-ins included (listing loads them)."""
        self.load_builtins()
        load_installed_plugins()
        return sorted(set(self._items) | set(self._lazy) | self.reserved)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if key in self._items or key in self._lazy or key in self.reserved:
            return True
        self.load_builtins()
        load_installed_plugins()
        return key in self._items or key in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def resolve(self, name: str, *, field: str | None = None) -> T:
        """The plug-in for a key or dotted path, or a ConfigError listing the valid keys."""
        found = self._known(name, field)
        if found is not None:
            return found
        if ":" not in name:  # a `module:attr` path is never a key: no need to load installed plug-ins
            load_installed_plugins()
            found = self._known(name, field)
            if found is not None:
                return found
        if looks_dotted(name):
            value: T = import_dotted(name, field=field)
            return value
        keys = self.keys()
        raise ConfigError(
            f"unknown {self.kind} '{name}'{did_you_mean(name, keys)}{_load_failures()}", field=field, choices=keys
        )

    def _known(self, name: str, field: str | None) -> T | None:
        if name not in self._items:
            self.load_builtins()
        if name in self._items:
            return self._items[name]
        where = self._lazy.get(name)
        if where is None:
            return None
        if ":" in where:
            self.register(name, import_dotted(where, field=field))
        else:
            importlib.import_module(where)  # its decorators register the plug-in
            if name not in self._items:
                raise ConfigError(f"module '{where}' did not register {self.kind} '{name}'", field=field)
        return self._items[name]


def validate_params(model: type[P], values: dict[str, Any], *, field: str, also_valid: Iterable[str] = ()) -> P:
    """A plug-in's options checked by its own Params model; the first problem is a ConfigError naming
    the option (`field.option`), with the valid option names when the key is unknown."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join([field, *(str(part) for part in first["loc"])])
        if first["type"] == "extra_forbidden":
            valid = [*model.model_fields, *also_valid]
            hint = did_you_mean(str(first["loc"][-1]), valid)
            raise ConfigError(f"unknown key{hint}", field=where, choices=valid) from None
        raise ConfigError(first["msg"].removeprefix("Value error, "), field=where) from None


def _load_failures() -> str:
    if not _installed.failed:
        return ""
    names = ", ".join(sorted(_installed.failed))
    return f"; installed plug-in package(s) that failed to load: {names} (see the warning logged for each)"


def _qualname(value: object) -> str:
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
