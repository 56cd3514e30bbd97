"""Runs stream in chunks: each chunk is evaluated, published and recorded before the next, the
summary adds the chunks up, a killed run keeps its finished chunks, and the local files hold
each item's text once (Parquet parts by default, or CSV files)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from shared.monitoring.ledger.csv_store import read_rows
from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.sinks.local import read_results
from tests.core.conftest import write_config

PLUGIN = """
import os
import signal

from shared.evaluation.metric import BaseMetric, MetricParams, metric

CALLS = 0


@metric(key="dies_at", description="1.0, until call EVALMON_TEST_KILL_AT kills the process (SIGKILL).")
class DiesAt(BaseMetric):
    class Params(MetricParams):
        pass

    async def execute(self, item):
        global CALLS
        CALLS += 1
        kill_at = int(os.environ.get("EVALMON_TEST_KILL_AT") or 0)
        if kill_at and CALLS >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.result(1.0)
"""
SINCE = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_chunks_add_up_to_the_same_run(tmp_path: Path, traces_file: Path) -> None:
    (tmp_path / "whole").mkdir()
    (tmp_path / "chunked").mkdir()
    whole = OnlineMonitor.from_yaml(write_config(tmp_path / "whole", traces_file), base_dir=tmp_path).run()
    chunked_config = write_config(tmp_path / "chunked", traces_file, evaluation={"chunk_size": 7})
    chunked = OnlineMonitor.from_yaml(chunked_config, base_dir=tmp_path).run()

    assert chunked.status == whole.status == "ok"
    assert chunked.counts.model_dump() == whole.counts.model_dump()
    assert chunked.metrics == whole.metrics
    evaluated = chunked.counts.evaluated
    assert evaluated > 7 * 5, "several chunks"
    results = read_results(str(chunked.results_dir))
    assert len(results) == 2 * evaluated and results["id"].nunique() == evaluated
    assert len(list(read_rows(tmp_path / "chunked" / "ledger.csv"))) == chunked.counts.recorded == 2 * evaluated


def test_item_text_is_written_once_and_the_wide_view_only_when_asked(tmp_path: Path, traces_file: Path) -> None:
    csv_files = {"local": {"dir": "runs", "format": "csv"}}
    summary = OnlineMonitor.from_yaml(write_config(tmp_path, traces_file, publish=csv_files), base_dir=tmp_path).run()
    results_dir = Path(str(summary.results_dir))
    items, results = csv_rows(results_dir / "items.csv"), csv_rows(results_dir / "results.csv")
    assert {"query", "actual_output"} <= set(items[0]) and not {"query", "actual_output"} & set(results[0])
    assert {r["id"] for r in results} == {i["id"] for i in items}
    assert not (results_dir / "results_with_text.csv").exists()

    (tmp_path / "wide").mkdir()
    wide_too = {"local": {"dir": "runs", "format": "csv", "results_with_text": True}}
    config = write_config(tmp_path / "wide", traces_file, publish=wide_too)
    wide_run = OnlineMonitor.from_yaml(config, base_dir=tmp_path / "wide").run()
    wide = csv_rows(Path(str(wide_run.results_dir)) / "results_with_text.csv")
    text = {i["id"]: i["actual_output"] for i in items}
    assert len(wide) == len(results) and all(row["actual_output"] == text[row["id"]] for row in wide)


def test_a_run_with_nothing_to_score_writes_no_folder(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(tmp_path, traces_file)
    first = OnlineMonitor.from_yaml(config, base_dir=tmp_path).run()
    again = OnlineMonitor.from_yaml(config, base_dir=tmp_path).run()
    assert again.status == "ok" and again.counts.evaluated == 0 and again.results_dir is None
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [Path(str(first.results_dir)).name]


def _workspace(tmp_path: Path, n_items: int) -> Path:
    (tmp_path / "chunk_kill_plugin.py").write_text(PLUGIN, encoding="utf-8")
    with (tmp_path / "items.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "timestamp", "query", "actual_output"])
        for n in range(n_items):
            writer.writerow([f"item-{n:03d}", (SINCE + timedelta(seconds=n)).isoformat(), f"question {n}", "answer"])
    config = {
        "monitor": "chunk-kill",
        "plugins": ["chunk_kill_plugin"],
        "source": {"type": "file", "path": "items.csv", "format": "csv"},
        "window": {"since": SINCE.isoformat(), "until": (SINCE + timedelta(days=1)).isoformat()},
        "metrics": [{"key": "dies_at"}],
        "evaluation": {"concurrency": 1, "chunk_size": 5},
        "dedup": {"store": "csv", "path": "ledger.csv"},
        "publish": {"local": {"dir": "runs"}},
    }
    path = tmp_path / "chunks.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _run(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(config.parent), os.environ.get("PYTHONPATH", "")])}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", "run", str(config), "--json"],
        cwd=config.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_run_killed_after_its_first_chunks_keeps_them(tmp_path: Path) -> None:
    config = _workspace(tmp_path, 30)
    killed = _run(config, EVALMON_TEST_KILL_AT="11")  # the first item of the third chunk of 5
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    recorded = list(read_rows(tmp_path / "ledger.csv"))
    assert sorted(r[2] for r in recorded) == [f"item-{n:03d}" for n in range(10)]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert len(list((run_dir / "results").glob("part-*.parquet"))) == 2, "a part file per finished chunk"
    kept = read_results(run_dir)
    assert kept["id"].tolist() == [f"item-{n:03d}" for n in range(10)]
    assert kept["query"].tolist() == [f"question {n}" for n in range(10)]

    rerun = _run(config)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary: dict[str, Any] = json.loads(rerun.stdout)
    assert summary["counts"]["duplicates"] == 10 and summary["counts"]["evaluated"] == 20
    ledger = [r[2] for r in read_rows(tmp_path / "ledger.csv")]
    assert sorted(ledger) == [f"item-{n:03d}" for n in range(30)], "every item recorded exactly once"


def test_parquet_parts_hold_the_same_results_as_the_csv_files(tmp_path: Path, traces_file: Path) -> None:
    runs = {}
    for fmt in ("csv", "parquet"):
        (tmp_path / fmt).mkdir()
        config = write_config(
            tmp_path / fmt,
            traces_file,
            evaluation={"chunk_size": 20},
            publish={"local": {"dir": "runs", "format": fmt}},
        )
        runs[fmt] = OnlineMonitor.from_yaml(config, base_dir=tmp_path / fmt).run()
    parquet_dir = Path(str(runs["parquet"].results_dir))
    assert len(list((parquet_dir / "results").glob("part-*.parquet"))) == 3, "one part file per chunk"
    assert not (parquet_dir / "results.csv").exists()

    from_csv, from_parquet = read_results(runs["csv"].results_dir), read_results(parquet_dir)
    assert len(from_parquet) == len(from_csv) == 2 * runs["csv"].counts.evaluated
    key = ["id", "metric_name"]
    a = from_csv.sort_values(key).reset_index(drop=True)
    b = from_parquet.sort_values(key).reset_index(drop=True)
    assert a["actual_output"].fillna("").tolist() == b["actual_output"].fillna("").tolist()
    assert a["metric_score"].tolist() == b["metric_score"].tolist()
    assert a["passed"].tolist() == b["passed"].tolist(), "typed columns read back as the CSV's"
