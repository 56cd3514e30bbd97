"""The shape of a trace value in a few characters (`list[dict{page_content,metadata}] x4`).

`evalmon inspect` shows it per field and per tree node; the extractor_fields proposal uses it to
judge what a path holds. Both read it here, so neither module imports the other for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_KEYS_SHOWN = 8


def shape_of(value: Any) -> tuple[str, int | None]:
    """A value's shape without its size (`dict{status,steps}`, `list[str]`), and the list length."""
    if value is None:
        return "null", None
    if isinstance(value, bool):
        return "bool", None
    if isinstance(value, int | float):
        return "number", None
    if isinstance(value, str):
        return "str", None
    if isinstance(value, Mapping):
        keys = [str(k) for k in value]
        shown = ",".join(keys[:MAX_KEYS_SHOWN]) + (",..." if len(keys) > MAX_KEYS_SHOWN else "")
        return f"dict{{{shown}}}", None
    if isinstance(value, list | tuple):
        inner = list(dict.fromkeys(shape_of(v)[0] for v in value))
        if not inner:
            return "list[]", 0
        body = "|".join(inner[:3]) + ("|..." if len(inner) > 3 else "")
        return f"list[{body}]", len(value)
    return type(value).__name__, None


def describe(value: Any) -> str:
    """`list[dict{page_content,metadata}] x4`: the shape with its size."""
    shape, size = shape_of(value)
    return shape if size is None else f"{shape} x{size}"
