"""The two lock files stay in step: the cron's runtime lock pins the same versions as the full lock."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)", re.MULTILINE)


def _pins(name: str) -> dict[str, str]:
    text = (REPO / name).read_text(encoding="utf-8")
    return {package.lower().replace("_", "-"): version for package, version in PIN.findall(text)}


def test_runtime_lock_is_a_subset_of_the_full_lock_with_the_same_versions() -> None:
    full, runtime = _pins("requirements.lock"), _pins("requirements-runtime.lock")
    assert runtime, "requirements-runtime.lock pins nothing"
    assert {p: v for p, v in runtime.items() if full.get(p) != v} == {}, "run `make lock` after editing pyproject.toml"


def test_runtime_lock_holds_every_runtime_dependency_and_no_dev_tool() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = _pins("requirements-runtime.lock")
    wanted = {re.split(r"[<>=!\[ ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    assert wanted - set(runtime) == set()
    dev_tools = {re.split(r"[<>=!\[ ]", dep, maxsplit=1)[0].lower() for dep in project["optional-dependencies"]["dev"]}
    assert dev_tools & set(runtime) <= {"psutil"}  # psutil may come in through another package
    assert "mypy" not in runtime and "jupyter-client" not in runtime and "ruff" not in runtime
