"""The public API: `evalmon` and the public subpackages list their names in `__all__`, every name
resolves, importing them stays cheap, and docs/api.md documents each one."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.exports import typing_imports
from tests.conftest import REPO

PUBLIC = ["evalmon", "shared.evaluation", "shared.monitoring", "shared.langfuse", "shared.reporting", "shared.database"]
LAZY = ["evalmon", "shared.monitoring", "shared.langfuse", "shared.database"]


@pytest.mark.parametrize("package", PUBLIC)
def test_every_name_in_all_resolves(package: str) -> None:
    module = importlib.import_module(package)
    names = module.__all__
    assert names == sorted(names) and len(set(names)) == len(names)
    missing = [name for name in names if getattr(module, name, None) is None]
    assert missing == []
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)  # what a notebook's star import gets
    assert set(names) <= set(namespace)


@pytest.mark.parametrize("package", LAZY)
def test_lazy_packages_list_each_name_once_in_imports_and_all(package: str) -> None:
    module = importlib.import_module(package)
    init_file = str(module.__file__)
    assert set(typing_imports(init_file)) == set(module.__all__) - {"__version__"}
    submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
    assert not submodules & set(module.__all__), "a name must not hide a submodule of the same name"
    with pytest.raises(AttributeError, match="has no attribute 'nonexistent'"):
        module.nonexistent  # noqa: B018 - the attribute access is the test


def test_the_names_notebooks_and_plugins_import() -> None:
    import evalmon
    from shared.evaluation.metric import metric
    from shared.monitoring.monitor import OnlineMonitor
    from shared.monitoring.sinks.base import register_sink
    from shared.reporting.run_report import write_run_report
    from shared.reporting.trends import build_trends
    from shared.traces import Trace, TraceCollection

    assert evalmon.OnlineMonitor is OnlineMonitor and evalmon.metric is metric
    assert evalmon.Trace is Trace and evalmon.TraceCollection is TraceCollection
    assert evalmon.write_run_report is write_run_report and evalmon.build_trends is build_trends
    assert evalmon.register_sink is register_sink
    assert evalmon.__version__


def test_importing_the_api_imports_nothing_heavy() -> None:
    """`import evalmon` (what a plug-in does while a config is checked) and one monitoring module
    must not pull in the monitor, the SDKs, psycopg, pandas or matplotlib."""
    heavy = ["shared.monitoring.monitor", "langfuse", "psycopg", "pandas", "matplotlib", "openai", "slack_sdk"]
    code = (
        "import sys, evalmon, shared.monitoring.config, shared.traces, shared.database; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_both_packages_ship_py_typed() -> None:
    for package in ("evalmon", "shared"):
        assert (REPO / "src" / package / "py.typed").is_file()


def test_docs_api_lists_every_public_name() -> None:
    import evalmon

    text = Path(REPO / "docs" / "api.md").read_text(encoding="utf-8")
    undocumented = [name for name in evalmon.__all__ if f"`{name}`" not in text]
    assert undocumented == []
