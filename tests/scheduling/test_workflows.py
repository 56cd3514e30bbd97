"""The monitoring workflow's shell step, run for real against a small monitor, and the rules the
workflows must keep (pinned actions, no template injection, a cache key unique per run)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from .monitor_fixture import write_monitor

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"


def load(name: str) -> dict[Any, Any]:
    return dict(yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8")))


def monitor_steps() -> list[dict[str, Any]]:
    return list(load("monitoring.yml")["jobs"]["monitor"]["steps"])


def run_step(tmp_path: Path, config: str, *, dry_run: bool = False) -> tuple[int, str]:
    """Execute the 'Run the monitor' script as the runner would (bash -e, env from the step)."""
    (step,) = [s for s in monitor_steps() if s.get("name") == "Run the monitor"]
    for link in (".venv", "scripts"):
        if not (tmp_path / link).exists():
            (tmp_path / link).symlink_to(REPO / link)
    summary = tmp_path / "step-summary.md"
    summary.unlink(missing_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CONFIG": config,
        "DRY_RUN": "true" if dry_run else "false",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(tmp_path / "step-output.txt"),
        "LANGFUSE_BASE_URL": "",  # an unset repository variable arrives empty
    }
    proc = subprocess.run(
        ["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    return proc.returncode, summary.read_text(encoding="utf-8") if summary.exists() else ""


def test_the_run_step_writes_the_summary_and_passes_the_exit_code(tmp_path: Path) -> None:
    write_monitor(tmp_path)
    code, summary = run_step(tmp_path, "sched_e2e.yaml", dry_run=True)
    # a dry run keeps no run folder unless asked: the step asks (--keep-results), for this report.md
    assert code == 0 and "## evalmon: sched_e2e - dry_run" in summary
    assert "| non_empty | higher is better | 12 | pass rate 75.0% |" in summary
    assert not (tmp_path / "ledger.csv").exists(), "a dry run records nothing"

    code, summary = run_step(tmp_path, "sched_e2e.yaml")
    assert code == 0
    assert "## evalmon: sched_e2e - ok" in summary  # the run's report.md
    assert "| non_empty | higher is better | 12 | pass rate 75.0% |" in summary
    outputs = (tmp_path / "step-output.txt").read_text(encoding="utf-8")
    report_dir = Path(outputs.strip().splitlines()[-1].removeprefix("report_dir="))
    assert (report_dir / "report.html").is_file()  # what the upload step sends as an artifact
    assert (tmp_path / "ledger.csv").exists()


def test_a_config_error_fails_the_step_with_exit_code_2(tmp_path: Path) -> None:
    code, summary = run_step(tmp_path, "no_such_monitor")
    assert code == 2
    assert "exit code 2, no run report" in summary


def test_workflows_pin_actions_and_never_interpolate_into_shell() -> None:
    for name in ("monitoring.yml", "ci.yml"):
        workflow = load(name)
        assert workflow["permissions"] == {"contents": "read"}
        for job in workflow["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    assert re.fullmatch(r"[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False
                assert "${{" not in step.get("run", ""), f"{name}: expression inside a shell script"


def test_each_config_restores_and_saves_its_own_ledger_under_a_unique_key() -> None:
    steps = {s.get("name"): s for s in monitor_steps()}
    restore, save = steps["Restore the dedup ledger"], steps["Save the dedup ledger"]
    assert restore["uses"].startswith("actions/cache/restore@") and save["uses"].startswith("actions/cache/save@")
    # the path comes from the config (via `evalmon cron-matrix`), never a hard-coded file
    paths = "${{ matrix.ledger }}\n${{ matrix.alert_state }}\n"  # and the alert incident state beside it
    assert restore["with"]["path"] == save["with"]["path"] == paths
    assert "matrix.ledger != ''" in restore["if"] and "hashFiles(matrix.ledger, matrix.alert_state)" in save["if"]
    assert restore["with"]["key"] == save["with"]["key"]
    assert "matrix.name" in save["with"]["key"]
    assert "github.run_id" in save["with"]["key"] and "github.run_attempt" in save["with"]["key"]
    prefix = restore["with"]["restore-keys"].strip()
    assert save["with"]["key"].startswith(prefix) and "matrix.name" in prefix
    assert "always()" in save["if"], "a failed or partial run still saves what it recorded"
    assert "scored_items" not in (WORKFLOWS / "monitoring.yml").read_text(encoding="utf-8")


def test_one_job_and_one_concurrency_group_per_config() -> None:
    jobs = load("monitoring.yml")["jobs"]
    job = jobs["monitor"]
    assert job["needs"] == "plan"
    assert job["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert job["strategy"]["fail-fast"] is False, "one failing monitor must not cancel the others"
    assert job["concurrency"]["group"] == "monitoring-${{ matrix.name }}"
    assert job["concurrency"]["cancel-in-progress"] is False
    assert job["env"]["CONFIG"] == "${{ matrix.config }}"
    (plan_step,) = [s for s in jobs["plan"]["steps"] if s.get("id") == "matrix"]
    assert "evalmon cron-matrix" in plan_step["run"]
