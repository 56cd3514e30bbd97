"""A whole run through the CLI: results, JSON summary, idempotent reruns, failing sinks, dry runs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from shared.cli import app
from shared.monitoring.ledger.csv_store import read_rows
from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.sinks.local import read_results
from tests.core.conftest import write_config

runner = CliRunner()
SUMMARY_KEYS = {
    "run_id", "monitor", "status", "window", "counts", "metrics", "alerts",
    "cost_usd", "duration_s", "results_dir", "errors",
}  # fmt: skip
COUNT_KEYS = {
    "fetched", "invalid", "duplicates", "sampled", "evaluated", "metric_errors",
    "published_postgres", "published_langfuse", "recorded",
}  # fmt: skip


def run_json(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["-q", "run", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_run_then_rerun_finds_nothing_new(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(tmp_path, traces_file)
    code, first = run_json(str(config))
    assert code == 0 and first["status"] == "ok"
    assert set(first) >= SUMMARY_KEYS and set(first["counts"]) >= COUNT_KEYS
    counts = first["counts"]
    assert counts["fetched"] == 60 and counts["invalid"] >= 2
    assert counts["sampled"] == counts["evaluated"] == 60 - counts["invalid"]
    assert counts["recorded"] == 2 * counts["evaluated"]
    assert set(first["metrics"]) == {"non_empty", "pii_leakage"}
    assert (Path(first["results_dir"]) / "summary.json").exists()
    assert len(read_results(first["results_dir"])) == counts["recorded"]

    code, second = run_json(str(config))
    assert code == 0 and second["status"] == "ok"
    assert second["counts"]["evaluated"] == 0 and second["counts"]["duplicates"] == counts["evaluated"]


def test_new_metric_scores_only_that_metric(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(tmp_path, traces_file)
    run_json(str(config))
    code, summary = run_json(str(config), "--set", "metrics.2.key=refusal")
    assert code == 0
    assert set(summary["metrics"]) == {"refusal"}
    assert summary["counts"]["recorded"] == summary["counts"]["evaluated"]


def test_failed_sink_records_nothing_and_exits_1(tmp_path: Path, traces_file: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x", encoding="utf-8")
    config = write_config(tmp_path, traces_file, publish={"local": {"dir": str(blocker)}})
    result = runner.invoke(app, ["-q", "run", str(config)])
    assert result.exit_code == 1
    assert not list(read_rows(tmp_path / "ledger.csv"))


def test_dry_run_writes_nothing_unless_asked_to_keep_results(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(tmp_path, traces_file)
    code, summary = run_json(str(config), "--dry-run")
    assert code == 0 and summary["status"] == "dry_run" and summary["counts"]["recorded"] == 0
    assert summary["counts"]["evaluated"] > 0 and summary["metrics"]["non_empty"]["n"] > 0  # the summary is whole
    assert summary["results_dir"] is None and not (tmp_path / "runs").exists()
    assert not (tmp_path / "ledger.csv").exists()

    code, kept = run_json(str(config), "--dry-run", "--keep-results")
    assert code == 0 and kept["status"] == "dry_run" and kept["counts"]["recorded"] == 0
    assert len(read_results(kept["results_dir"])) == 2 * kept["counts"]["evaluated"] > 0
    assert (Path(kept["results_dir"]) / "report.md").is_file()
    assert not (tmp_path / "ledger.csv").exists()


def test_limit_caps_the_run_and_says_more_is_available(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(tmp_path, traces_file)
    code, summary = run_json(str(config), "--limit", "5")
    assert code == 0 and summary["counts"]["sampled"] == 5 and summary["counts"]["more_available"] is True


def test_metric_error_rate_above_limit_fails_the_run(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(
        tmp_path,
        traces_file,
        metrics=[{"key": "json_valid", "params": {"json_schema": {"type": "object", "required": ["nope"]}}}],
        evaluation={"max_error_rate": 0.0},
    )
    code, summary = run_json(str(config))
    # json_valid failures are scores, not errors: the run stays ok even though pass rate is low
    assert code == 0 and summary["metrics"]["json_valid"]["pass_rate"] < 1


def test_run_inside_a_running_event_loop(tmp_path: Path, traces_file: Path) -> None:
    import asyncio

    monitor = OnlineMonitor.from_yaml(write_config(tmp_path, traces_file))

    async def notebook_cell() -> str:
        return monitor.run().status

    assert asyncio.run(notebook_cell()) == "ok"


def test_hostile_records_are_counted_or_scored(tmp_path: Path) -> None:
    rows = [
        {"id": "o1", "traceId": "t1", "isRootObservation": True, "input": None, "output": "x" * 1_000_000},
        {"id": "o2", "traceId": "t2", "isRootObservation": True, "input": "{bad json", "output": None},
        {"id": "o3", "traceId": "", "isRootObservation": True},
        {
            "id": "o4",
            "traceId": "t4",
            "isRootObservation": True,
            "output": "écrit 日本語 🚀",
            "startTime": "not a time",
        },
    ]
    traces = tmp_path / "hostile.jsonl"
    traces.write_text("".join(json.dumps(r) + "\n" for r in rows) + "garbage\n", encoding="utf-8")
    code, summary = run_json(str(write_config(tmp_path, traces)))
    assert code == 0
    assert summary["counts"]["fetched"] == 5 and summary["counts"]["invalid"] == 2
    assert summary["counts"]["evaluated"] == 3
