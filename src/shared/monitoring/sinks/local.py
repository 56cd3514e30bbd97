"""The local sink: data/runs/<run_id>/ items.csv, results.csv and summary.json.

Compact on purpose: `items.csv` holds each item's text once (id, trace and observation ids,
session, timestamp, query, actual_output, expected_output); `results.csv` holds one row per
(item, metric) naming the item by `id` and `trace_id`, with the metric's columns. Join them on
`id`. `publish.local.results_with_text: true` also writes `results_with_text.csv`, the wide view
with the item's text on every row (for spreadsheets; it repeats the text once per metric).

A run publishes chunk by chunk: each chunk is appended in one write per file, so a chunk
that was published stays in the files when a later one fails or the process is killed.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import orjson

from shared.evaluation.item import DatasetItem
from shared.evaluation.results import (
    ITEM_COLUMNS,
    ITEM_ID_COLUMNS,
    RESULT_COLUMNS,
    SCORE_COLUMNS,
    EvaluationResult,
    item_values,
)
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import PairKey, Sink, SinkReport, register_sink

ITEMS_FILE = "items.csv"
RESULTS_FILE = "results.csv"
WIDE_FILE = "results_with_text.csv"


@register_sink("local")
class LocalSink(Sink):
    name = "local"

    async def publish(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        directory = run.results_dir
        if not len(results):  # nothing scored: no folder
            return SinkReport(self.name)
        with_text = bool(getattr(run.config.publish.local, "results_with_text", False))
        try:
            directory.mkdir(parents=True, exist_ok=True)
            rejected = append_results(directory, results, with_text=with_text)
        except (OSError, ValueError) as exc:
            return SinkReport(self.name, error=f"cannot write {directory}: {exc}")
        report = SinkReport(self.name, details={"results_dir": str(directory)})
        if rejected:  # only those rows fail: every other pair is stored
            report.stored = {(row.item.id, row.metric_name) for row in results} - rejected.keys()
            (item_id, metric), reason = next(iter(rejected.items()))
            report.error = (
                f"{len(rejected)} row(s) could not be written to {RESULTS_FILE} "
                f"(first: item {item_id!r}, metric {metric!r}: {reason})"
            )
        return report


def append_results(directory: Path, results: EvaluationResult, *, with_text: bool = False) -> dict[PairKey, str]:
    """Append one chunk to items.csv and results.csv (and the wide view when asked); return the
    rows that could not be written, with the reason.

    csv.writer rather than pandas: a run can have 100,000 rows and this is on the hot path. Each
    file gets the chunk in one write. A row whose signals cannot be serialised is left out (and
    reported), never the whole chunk; text is made encodable by `publish_results` before it gets
    here, and `errors="replace"` keeps a direct caller's stray surrogate from failing the file.
    """
    encode = _LineEncoder()
    items: list[str] = []
    scores: list[str] = []
    wide: list[str] | None = [] if with_text else None
    signals_at = RESULT_COLUMNS.index("signals") - len(ITEM_COLUMNS)
    rejected: dict[PairKey, str] = {}
    last_item: DatasetItem | None = None
    id_prefix = text_prefix = ""
    for row in results:
        if row.item is not last_item:  # an item's columns are encoded once for all of its metric rows
            last_item = row.item
            values = item_values(row.item)
            item_line = encode(values)
            items.append(item_line)
            text_prefix = item_line.removesuffix(_TERMINATOR) + ","
            id_prefix = encode(values[: len(ITEM_ID_COLUMNS)]).removesuffix(_TERMINATOR) + ","
        metric_values = row.metric_values()
        try:
            metric_values[signals_at] = orjson.dumps(
                metric_values[signals_at], default=str, option=orjson.OPT_NON_STR_KEYS
            ).decode()
        except (TypeError, ValueError, RecursionError) as exc:  # orjson.JSONEncodeError is a TypeError
            rejected[(row.item.id, row.metric_name)] = f"signals: {exc}"
            continue
        metric_line = encode(metric_values)
        scores.append(id_prefix + metric_line)
        if wide is not None:
            wide.append(text_prefix + metric_line)
    _append(directory / ITEMS_FILE, ITEM_COLUMNS, "".join(items))
    _append(directory / RESULTS_FILE, SCORE_COLUMNS, "".join(scores))
    if wide is not None:
        _append(directory / WIDE_FILE, RESULT_COLUMNS, "".join(wide))
    return rejected


def _append(path: Path, header: list[str], text: str) -> None:
    """One write per chunk (the header first when the file is new), flushed to disk."""
    new_file = not path.exists()
    with path.open("a", encoding="utf-8", errors="replace", newline="") as handle:
        if new_file:
            handle.write(_csv_line(header))
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


class _LineEncoder:
    """One CSV line per call (the csv module's quoting, one reused buffer)."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)

    def __call__(self, values: list[Any]) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(values)
        return self._buffer.getvalue()


def _csv_line(values: list[Any]) -> str:
    return _LineEncoder()(values)


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
