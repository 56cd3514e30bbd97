"""`evalmon cron-matrix`: the monitors the GitHub Actions cron runs, each with the ledger its config
names, and the workflow's plan step feeding the run step with them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cli import app
from shared.monitoring.cron_matrix import CronEntry, cron_entries

from .monitor_fixture import write_monitor
from .test_workflows import REPO, load, run_step

runner = CliRunner()


def implementation_config(root: Path, name: str, body: str) -> Path:
    """A config inside a repository at `root`: its relative paths resolve against `root`."""
    (root / "pyproject.toml").touch()
    folder = root / "src" / "implementations" / "acme" / "config"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    base = "source: {type: file, path: traces.csv}\nmetrics: [{key: non_empty}]\n"
    path.write_text(f"monitor: {name}_monitor\n{base}{body}", encoding="utf-8")
    return path


def test_only_configs_marked_for_the_cron_are_listed_with_their_own_ledgers(tmp_path: Path) -> None:
    implementation_config(tmp_path, "hourly_csv", "schedule: {cron: '17 * * * *', github_actions: true}\n")
    implementation_config(
        tmp_path,
        "hourly_judge",
        "dedup: {path: data/scored_items_judge.csv}\nschedule: {interval_minutes: 60, github_actions: true}\n",
    )
    implementation_config(
        tmp_path, "hourly_pg", "dedup: {store: postgres}\nschedule: {interval_minutes: 60, github_actions: true}\n"
    )
    implementation_config(tmp_path, "local_only", "schedule: {interval_minutes: 60}\n")
    implementation_config(tmp_path, "unscheduled", "")

    entries = {e.name: e for e in cron_entries(search_root=tmp_path, base_dir=tmp_path)}
    assert "local_only" not in entries and "unscheduled" not in entries
    assert entries["hourly_csv"] == CronEntry(
        name="hourly_csv",
        config="src/implementations/acme/config/hourly_csv.yaml",
        monitor="hourly_csv_monitor",
        ledger="data/scored_items.csv",
        alert_state="",  # no alert rules: no incident state to carry
    )
    assert entries["hourly_judge"].ledger == "data/scored_items_judge.csv"
    assert entries["hourly_pg"].ledger == "", "a Postgres ledger needs no cache"


def test_a_monitor_with_alert_rules_carries_its_incident_state_beside_the_ledger(tmp_path: Path) -> None:
    rules = "alerts: {rules: [{metric: non_empty, stat: pass_rate, threshold: 0.9}]}\n"
    config = implementation_config(tmp_path, "alerting", f"dedup: {{path: state/ledger.csv}}\n{rules}")
    [entry] = cron_entries([str(config)], base_dir=tmp_path)
    assert (entry.ledger, entry.alert_state) == ("state/ledger.csv", "state/alerts.state.json")


def test_a_named_config_is_listed_even_when_not_marked(tmp_path: Path) -> None:
    config = implementation_config(tmp_path, "local_only", f"dedup: {{path: {tmp_path}/state/ledger.csv}}\n")
    [entry] = cron_entries([str(config)], base_dir=tmp_path)
    assert entry.ledger == "state/ledger.csv", "a ledger inside the workspace is given relative to it"


def test_the_bundled_production_monitor_is_in_the_cron() -> None:
    result = runner.invoke(app, ["cron-matrix"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    names = {e["name"]: e for e in entries}
    assert names["monitoring_langfuse"]["ledger"] == "data/scored_items.csv"
    assert "monitoring_local" not in names, "the demo monitor is not for the cron"


def test_two_configs_of_one_monitor_are_refused(tmp_path: Path) -> None:
    a = implementation_config(tmp_path, "a", "")
    b = tmp_path / "b.yaml"
    b.write_text(a.read_text(encoding="utf-8"), encoding="utf-8")
    result = runner.invoke(app, ["cron-matrix", str(a), str(b)])
    assert result.exit_code == 2
    assert "both have the monitor 'a_monitor'" in result.output and len(result.output.strip().splitlines()) == 1


def test_a_broken_config_fails_the_plan_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe binary")
    result = runner.invoke(app, ["cron-matrix", str(bad)])
    assert result.exit_code == 2 and f"{bad}: not a UTF-8 text file" in result.output


def run_plan_step(tmp_path: Path, config: str) -> list[dict[str, str]]:
    """Execute the plan job's 'List the monitors to run' script as the runner would."""
    (step,) = [s for s in load("monitoring.yml")["jobs"]["plan"]["steps"] if s.get("id") == "matrix"]
    if not (tmp_path / ".venv").exists():
        (tmp_path / ".venv").symlink_to(REPO / ".venv")
    output = tmp_path / "github-output"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CONFIG": config, "GITHUB_OUTPUT": str(output)}
    subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env, check=True, timeout=120)
    (line,) = output.read_text(encoding="utf-8").splitlines()
    key, _, value = line.partition("=")
    assert key == "matrix"
    return list(json.loads(value))


@pytest.mark.parametrize("ledger", ["ledger.csv", "state/judge_ledger.csv"])
def test_the_plan_names_the_ledger_file_the_run_writes(tmp_path: Path, ledger: str) -> None:
    config = write_monitor(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace("path: ledger.csv", f"path: {ledger}"))
    [entry] = run_plan_step(tmp_path, config.name)
    expected = {"name": "sched_e2e", "config": "sched_e2e.yaml", "monitor": "sched_e2e", "ledger": ledger}
    assert entry == {**expected, "alert_state": ""}
    code, _ = run_step(tmp_path, entry["config"])
    assert code == 0
    assert (tmp_path / entry["ledger"]).is_file(), "the cache saves exactly the file the monitor wrote"
