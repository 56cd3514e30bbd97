"""The package's structure: no import loops, the platform never imports the apps, `import evalmon` stays light.

Imports are read from the source (AST), not by importing: an import deferred into a function counts
too, because a loop hidden that way is still a loop (the two modules cannot be understood, tested or
moved apart). Only imports under `if TYPE_CHECKING:` are left out (they never run).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO

SRC = REPO / "src"
SDKS = ["langfuse", "openai", "slack_sdk", "psycopg", "psycopg_pool", "aiohttp", "starlette", "uvicorn", "apscheduler"]
HEAVY = ["pandas", "pyarrow", "matplotlib", "shared.monitoring.monitor"]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that can run: at module level or in a function, not under `if TYPE_CHECKING:`."""
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for branch in node.orelse:
            yield from _imports(branch)
        return
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    for child in ast.iter_child_nodes(node):
        yield from _imports(child)


def imported_names(path: Path, name: str) -> set[str]:
    """Dotted names a module imports (`from a import b` gives `a` and `a.b`), relative ones resolved."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            package = name if is_package else name.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        found.add(base)
        found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of `root` whose import it runs, package `__init__`s included (importing
    `a.b.c` runs `a` and `a.b`); a module's own enclosing packages are already being imported."""
    paths = {module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges: set[str] = set()
        for target in imported_names(path, name):
            parts = target.split(".")
            for end in range(1, len(parts) + 1):
                module = ".".join(parts[:end])
                if module in paths and module != name and not name.startswith(module + "."):
                    edges.add(module)
        graph[name] = edges
    return graph


def import_loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest loop per module that is on one (breadth-first back to itself), deduplicated."""
    loops: dict[frozenset[str], list[str]] = {}
    for start in sorted(graph):
        paths = {start: [start]}
        queue = [start]
        while queue:
            current = queue.pop(0)
            for following in sorted(graph[current]):
                if following == start:
                    loop = paths[current]
                    loops.setdefault(frozenset(loop), [*loop, start])
                    queue = []
                    break
                if following not in paths:
                    paths[following] = [*paths[current], following]
                    queue.append(following)
    return sorted(loops.values())


def test_no_import_loops_among_src_modules() -> None:
    loops = import_loops(import_graph(SRC))
    assert loops == [], "import loops (deferred imports count):\n" + "\n".join(" -> ".join(loop) for loop in loops)


def test_the_loop_finder_sees_a_loop_hidden_in_a_function(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "core.py").write_text("def load():\n    from pkg import catalogue\n")
    (package / "catalogue.py").write_text("from pkg.core import load\n")
    (package / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import core\n")
    assert import_loops(import_graph(tmp_path)) == [["pkg.catalogue", "pkg.core", "pkg.catalogue"]]


def test_shared_never_imports_implementations() -> None:
    """The platform (src/shared) knows apps only by the names a config gives: never by import,
    not even for type checking."""
    offenders = []
    for path in sorted((SRC / "shared").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] == "implementations"]
    assert offenders == []


def test_importing_evalmon_pulls_no_sdk() -> None:
    """`import evalmon` (a plug-in package does it while a config is checked) and the trace model
    (a notebook's first import) load no service SDK, database driver or data-frame library."""
    watched = SDKS + HEAVY
    code = f"import sys, evalmon, shared.traces; print([m for m in {watched!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
