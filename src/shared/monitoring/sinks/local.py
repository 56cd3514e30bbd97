"""The local sink: data/runs/<run_id>/results.csv (one row per item x metric) and summary.json."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import orjson

from shared.evaluation.results import RESULT_COLUMNS, EvaluationResult
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import Sink, SinkReport


class LocalSink(Sink):
    name = "local"

    async def publish(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        directory = run.results_dir
        try:
            directory.mkdir(parents=True, exist_ok=True)
            _write_results_csv(directory / "results.csv", results)
        except OSError as exc:
            return SinkReport(self.name, error=f"cannot write {directory}: {exc}")
        return SinkReport(self.name, details={"results_dir": str(directory)})


def _write_results_csv(path: Path, results: EvaluationResult) -> None:
    """csv.writer rather than pandas: a run can have 100,000 rows and this is on the hot path."""
    tmp = path.with_suffix(".csv.tmp")
    signals_at = RESULT_COLUMNS.index("signals")
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(RESULT_COLUMNS)
        for row in results:
            record = row.as_record()
            values = [record[column] for column in RESULT_COLUMNS]
            values[signals_at] = orjson.dumps(values[signals_at], default=str, option=orjson.OPT_NON_STR_KEYS).decode()
            writer.writerow(values)
    os.replace(tmp, path)


def write_summary(directory: Path, summary: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "summary.json"
    _atomic_write(path, json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
