"""Public names that load on first use (PEP 562), for package `__init__` files.

A package lists its public names twice, in plain sight: `from module import Name` statements under
`if TYPE_CHECKING:` (what type checkers and editors read) and a literal `__all__`. At run time the
package imports nothing until a name is used; `lazy_exports` then finds the module from those same
import statements. So `import evalmon` or `import shared.monitoring.config` stays cheap, and there is
no third list to keep in step (tests/plugins/test_public_api.py checks the two lists agree).
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["lazy_exports", "typing_imports"]


def lazy_exports(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose `__init__.py` is `init_file`."""

    def get(name: str) -> Any:
        where = typing_imports(init_file).get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = where
        value = getattr(importlib.import_module(module), attribute)
        setattr(sys.modules[package], name, value)  # later uses skip __getattr__
        return value

    def listing() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(typing_imports(init_file)))

    return get, listing


@cache
def typing_imports(init_file: str) -> dict[str, tuple[str, str]]:
    """Name -> (module, attribute) of the `from module import attribute [as Name]` statements under
    `if TYPE_CHECKING:`."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"), filename=init_file)
    found: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    for alias in statement.names:
                        found[alias.asname or alias.name] = (statement.module, alias.name)
    return found
