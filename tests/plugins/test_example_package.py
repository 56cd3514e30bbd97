"""examples/evalmon-example-plugins, pip-installed into a temporary folder: `evalmon run` finds its
sink and sampler through the `evalmon.plugins` entry point, and a config uses them by name."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

from .wheel import build_wheel

EXAMPLE = REPO / "examples" / "evalmon-example-plugins"
EVALMON = [sys.executable, "-c", "from shared.cli import app; app(prog_name='evalmon')"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package installed by pip into its own folder (the repo's venv stays as it was)."""
    root = tmp_path_factory.mktemp("example_plugins")
    wheel = build_wheel(EXAMPLE, root)
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target", str(target), wheel],
        check=True,
        timeout=120,
    )
    assert (target / "evalmon_example_plugins-0.1.0.dist-info" / "entry_points.txt").is_file()
    return target


def evalmon(*args: str, cwd: Path, site: Path | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site) if site else ""}
    return subprocess.run([*EVALMON, *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=120)


@pytest.fixture
def monitor_dir(tmp_path: Path) -> Path:
    for name in ("monitor.yaml", "traces.csv"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    return tmp_path


def test_installed_package_adds_a_sink_and_a_sampler_a_config_uses_by_name(site: Path, monitor_dir: Path) -> None:
    done = evalmon("run", "monitor.yaml", "--json", cwd=monitor_dir, site=site)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (monitor_dir / "scores.jsonl").read_text(encoding="utf-8").splitlines()]
    # per_session: one item from each of the three sessions, each scored by the one metric
    assert sorted(line["session_id"] for line in lines) == ["s1", "s2", "s3"]
    assert {line["metric_name"] for line in lines} == {"non_empty"}
    assert len({line["run_id"] for line in lines}) == 1
    # the ledger recorded exactly what the required jsonl sink confirmed
    with (monitor_dir / "ledger.csv").open(encoding="utf-8") as handle:
        recorded = {row["item_id"] for row in csv.DictReader(handle)}
    assert recorded == {line["id"] for line in lines}
    summary = json.loads(done.stdout)
    assert summary["status"] == "ok"


def test_without_the_package_the_names_are_unknown_config_errors(monitor_dir: Path) -> None:
    done = evalmon("validate", "monitor.yaml", cwd=monitor_dir, site=None)
    assert done.returncode == 2
    output = done.stdout + done.stderr
    assert "sampling.strategy: unknown sampling strategy 'per_session'" in output
    assert "(valid: all, most_recent, oldest, random, rate, stratified)" in output


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("publish.sinks.0.colour=red", "publish.sinks.0.colour: unknown key (valid: name, path, required, type)"),
        ("sampling.params.per_session=0", "sampling.params.per_session: Input should be greater than or equal to 1"),
        ("publish.sinks.0.type=parquet", "publish.sinks.0.type: unknown sink type 'parquet' (valid: jsonl, langfuse"),
    ],
)
def test_plugin_options_are_validated_by_the_plugins_own_params(
    site: Path, monitor_dir: Path, override: str, expected: str
) -> None:
    done = evalmon("run", "monitor.yaml", "--set", override, cwd=monitor_dir, site=site)
    assert done.returncode == 2
    assert expected in done.stdout + done.stderr
