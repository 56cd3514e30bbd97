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
from shared.monitoring.sinks.base import PairKey, Sink, SinkReport


class LocalSink(Sink):
    name = "local"

    async def publish(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        directory = run.results_dir
        try:
            directory.mkdir(parents=True, exist_ok=True)
            rejected = _write_results_csv(directory / "results.csv", results)
        except (OSError, ValueError) as exc:
            return SinkReport(self.name, error=f"cannot write {directory}: {exc}")
        report = SinkReport(self.name, details={"results_dir": str(directory)})
        if rejected:  # only those rows fail: every other pair is stored
            report.stored = {(row.item.id, row.metric_name) for row in results} - rejected.keys()
            (item_id, metric), reason = next(iter(rejected.items()))
            report.error = (
                f"{len(rejected)} row(s) could not be written to results.csv "
                f"(first: item {item_id!r}, metric {metric!r}: {reason})"
            )
        return report


def _write_results_csv(path: Path, results: EvaluationResult) -> dict[PairKey, str]:
    """Write results.csv (atomically); return the rows that could not be written, with the reason.

    csv.writer rather than pandas: a run can have 100,000 rows and this is on the hot path.
    An item's columns (its query and output can be long) are encoded once and reused for each of
    its metric rows: the file is the same as writing every row whole, since csv quotes each field
    on its own and joins fields with the delimiter. A row whose signals cannot be serialised is
    left out (and reported), never the whole file; text is made encodable by `publish_results`
    before it gets here, and `errors="replace"` keeps a direct caller's stray surrogate from
    failing the file. The temporary file never outlives the call.
    """
    tmp = path.with_suffix(".csv.tmp")
    signals_at = RESULT_COLUMNS.index("signals") - len(ITEM_COLUMNS)
    prefix_buffer = io.StringIO()
    prefix_writer = csv.writer(prefix_buffer)  # same dialect as the file writer below
    rejected: dict[PairKey, str] = {}
    try:
        with tmp.open("w", encoding="utf-8", errors="replace", newline="") as handle:
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
                try:
                    values[signals_at] = orjson.dumps(
                        values[signals_at], default=str, option=orjson.OPT_NON_STR_KEYS
                    ).decode()
                except (TypeError, ValueError, RecursionError) as exc:  # orjson.JSONEncodeError is a TypeError
                    rejected[(row.item.id, row.metric_name)] = f"signals: {exc}"
                    continue
                handle.write(prefix)
                writer.writerow(values)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return rejected


_TERMINATOR = csv.excel.lineterminator


def write_summary(directory: Path, summary: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "summary.json"
    _atomic_write(path, json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    return path


def _atomic_write(path: Path, text: str) -> None:
    """Write whole or not at all; the temporary file never outlives the call."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8", errors="replace")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
