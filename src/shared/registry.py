"""One way to resolve plug-ins: a registry key or a `package.module:attr` dotted path.

Sources, metrics and extractors all resolve through here, so an unknown name always fails the
same way: a ConfigError listing the valid keys.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from shared.errors import ConfigError

T = TypeVar("T")


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


class Registry(Generic[T]):
    """Named plug-ins, registered by decorator or lazily by dotted path (to avoid import cost)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}

    def register(self, key: str, value: T) -> T:
        existing = self._items.get(key)
        if existing is not None and existing is not value and _qualname(existing) != _qualname(value):
            raise ValueError(f"{self.kind} '{key}' is already registered by {_qualname(existing)}")
        self._items[key] = value
        return value

    def register_lazy(self, key: str, dotted: str) -> None:
        self._lazy.setdefault(key, dotted)

    def decorator(self, key: str) -> Callable[[T], T]:
        def wrap(value: T) -> T:
            return self.register(key, value)

        return wrap

    def keys(self) -> list[str]:
        return sorted(set(self._items) | set(self._lazy))

    def __contains__(self, key: str) -> bool:
        return key in self._items or key in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def resolve(self, name: str, *, field: str | None = None) -> T:
        """Return the plug-in for a key or dotted path, or raise ConfigError listing valid keys."""
        if name in self._items:
            return self._items[name]
        if name in self._lazy:
            value: T = import_dotted(self._lazy[name], field=field)
            self._items.setdefault(name, value)
            return self._items[name]
        if looks_dotted(name):
            return import_dotted(name, field=field)
        raise ConfigError(f"unknown {self.kind} '{name}'", field=field, choices=self.keys())


def _qualname(value: object) -> str:
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
