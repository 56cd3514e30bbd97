"""The local sink: data/runs/<run_id>/results.csv (one row per item x metric) and summary.json."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import orjson

from shared.evaluation.item import DatasetItem
from shared.evaluation.results import ITEM_COLUMNS, RESULT_COLUMNS, EvaluationResult, item_values
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
    """csv.writer rather than pandas: a run can have 100,000 rows and this is on the hot path.

    An item's columns (its query and output can be long) are encoded once and reused for each of
    its metric rows: the file is the same as writing every row whole, since csv quotes each field
    on its own and joins fields with the delimiter.
    """
    tmp = path.with_suffix(".csv.tmp")
    signals_at = RESULT_COLUMNS.index("signals") - len(ITEM_COLUMNS)
    prefix_buffer = io.StringIO()
    prefix_writer = csv.writer(prefix_buffer)  # same dialect as the file writer below
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(RESULT_COLUMNS)
        last_item: DatasetItem | None = None
        prefix = ""
        for row in results:
            if row.item is not last_item:
                last_item = row.item
                prefix_buffer.seek(0)
                prefix_buffer.truncate()
                prefix_writer.writerow(item_values(row.item))
                prefix = prefix_buffer.getvalue().removesuffix(_TERMINATOR) + ","
            values = row.metric_values()
            values[signals_at] = orjson.dumps(values[signals_at], default=str, option=orjson.OPT_NON_STR_KEYS).decode()
            handle.write(prefix)
            writer.writerow(values)
    os.replace(tmp, path)


_TERMINATOR = csv.excel.lineterminator


def write_summary(directory: Path, summary: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "summary.json"
    _atomic_write(path, json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
