"""Relative paths in a config resolve against the config's repository root (else its folder), never
the working directory: `validate` and `run` agree from any directory, and validate checks input files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from shared.cli import app
from shared.monitoring.config import config_root
from shared.monitoring.cron_matrix import cron_entries
from shared.monitoring.monitor import OnlineMonitor

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def write_project(root: Path, *, marker: str | None = "pyproject.toml", **changes: object) -> Path:
    """A project with a trace file in data/ and a config in config/ naming every path relatively."""
    (root / "data").mkdir(parents=True)
    (root / "config").mkdir()
    if marker == ".git":
        (root / ".git").mkdir()
    elif marker:
        (root / marker).write_text("[project]\nname = 'x'\n", encoding="utf-8")
    with (root / "data" / "traces.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "timestamp", "query", "actual_output"])
        writer.writerows([f"t{i}", f"2026-11-20T0{i}:00:00Z", f"q{i}", f"answer {i}"] for i in range(4))
    config = {
        "monitor": "paths",
        "source": {"type": "file", "path": "data/traces.csv"},
        "metrics": [{"key": "non_empty"}],
        "dedup": {"path": "data/ledger.csv"},
        "publish": {"local": {"dir": "data/runs"}},
        **changes,
    }
    path = root / "config" / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.parametrize("marker", ["pyproject.toml", ".git"])
def test_validate_and_run_agree_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: str
) -> None:
    project = tmp_path / "project"
    config = write_project(project, marker=marker)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    summaries = []
    for cwd in (elsewhere, project / "config", project):
        monkeypatch.chdir(cwd)
        checked = runner.invoke(app, ["validate", str(config)])
        assert checked.exit_code == 0, checked.output
        ran = runner.invoke(app, ["run", str(config), "--json"])
        assert ran.exit_code == 0, ran.output
        summaries.append(json.loads(ran.stdout))
    first, *later = summaries
    assert first["counts"]["evaluated"] == 4 and Path(first["results_dir"]).parent == project / "data" / "runs"
    assert [s["counts"]["duplicates"] for s in later] == [4, 4], "every run reads the one ledger"
    assert len((project / "data" / "ledger.csv").read_text(encoding="utf-8").splitlines()) == 1 + 4
    assert not (elsewhere / "data").exists() and not (project / "config" / "data").exists()


def test_without_a_repository_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = write_project(tmp_path / "loose", marker=None, source={"type": "file", "path": "../data/traces.csv"})
    assert config_root(config) == config.parent
    monitor = OnlineMonitor.from_yaml(config)
    assert monitor.base_dir == config.parent
    assert monitor.source.file == config.parent / "../data/traces.csv"  # type: ignore[attr-defined]


def test_an_explicit_base_dir_still_wins(tmp_path: Path) -> None:
    config = write_project(tmp_path / "project")
    other = tmp_path / "notebook"
    monitor = OnlineMonitor.from_yaml(config, base_dir=other)
    assert monitor.base_dir == other
    assert monitor.source.file == other / "data" / "traces.csv"  # type: ignore[attr-defined]


def test_validate_names_a_missing_input_file_and_where_relative_paths_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    config = write_project(project, source={"type": "file", "path": "data/missing.csv"})
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert "source.path: trace file not found" in result.output
    assert f"resolve against {project}" in result.output.replace("\n", "")

    judge = {"key": "llm_judge", "params": {"fallback_file": "prompts/rubric.md"}}
    config = write_project(tmp_path / "judge", metrics=[judge])
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert "metrics.0.params.fallback_file: file not found" in result.output
    (tmp_path / "judge" / "prompts").mkdir()
    (tmp_path / "judge" / "prompts" / "rubric.md").write_text("Score {{actual_output}}", encoding="utf-8")
    assert runner.invoke(app, ["validate", str(config)]).exit_code == 0


def test_the_cron_matrix_names_the_ledger_the_run_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    config = write_project(project, alerts={"rules": [{"metric": "non_empty", "threshold": 0.5}]})
    monkeypatch.chdir(project / "config")  # the workspace is the root whatever directory plans
    [entry] = cron_entries([str(config)], base_dir=project)
    assert (entry.ledger, entry.alert_state) == ("data/ledger.csv", "data/alerts.state.json")


def test_the_demo_config_resolves_against_the_repository(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # `make demo` runs from the root; any other directory reads the same files
    monitor = OnlineMonitor.from_yaml("monitoring_local")
    assert monitor.base_dir == REPO
    assert monitor.source.file == REPO / "data" / "samples" / "athena_traces.jsonl"  # type: ignore[attr-defined]
    assert runner.invoke(app, ["validate", "monitoring_local"]).exit_code == 0


def test_init_writes_the_trace_path_as_the_config_will_read_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.inspection.shapes import rag_traces, write_jsonl

    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "pyproject.toml").write_text("", encoding="utf-8")
    write_jsonl(project / "data" / "rag.jsonl", rag_traces(5))
    monkeypatch.chdir(project / "data")  # --path is relative to where the command runs
    out = project / "config" / "rag.yaml"
    done = runner.invoke(app, ["init", "--source", "file", "--path", "rag.jsonl", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["source"]["path"] == "data/rag.jsonl"
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0
