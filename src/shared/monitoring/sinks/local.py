"""The local sink: a run's results and summary.json under data/runs/<run_id>/.

Compact on purpose: each item's text (id, trace and observation ids, session, timestamp, query,
actual_output, expected_output) is stored once, and the scores one row per (item, metric) naming
the item by `id` and `trace_id`, with the metric's columns. `read_results(run_dir)` joins them
into the wide view, one row per (item, metric) with the item's text, as a pandas DataFrame.

`publish.local.format`:
  parquet (default)  `items/` and `results/`, one zstd Parquet part file per chunk, typed
                     columns: a small fraction of the CSV size.
  csv                `items.csv` and `results.csv`.
`publish.local.results_with_text: true` also writes `results_with_text.csv`, the wide view as one
CSV file for spreadsheets (it repeats the text once per metric).

A run publishes chunk by chunk: each chunk is written as one more part file (atomically) or
appended in one write per CSV file, so a chunk that was published stays when a later one fails
or the process is killed.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import orjson

from shared.evaluation.columns import ITEM_COLUMNS, ITEM_ID_COLUMNS, METRIC_FIELDS, RESULT_COLUMNS, SCORE_COLUMNS
from shared.evaluation.item import DatasetItem
from shared.evaluation.results import EvaluationResult, ResultRow, item_values
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import PairKey, Sink, SinkReport, register_sink

ITEMS_FILE = "items.csv"
RESULTS_FILE = "results.csv"
WIDE_FILE = "results_with_text.csv"
ITEMS_DIR = "items"  # Parquet parts (publish.local.format: parquet, the default)
RESULTS_DIR = "results"


@register_sink("local")
class LocalSink(Sink):
    name = "local"

    async def publish(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        directory = run.results_dir
        if not len(results):  # nothing scored: no folder
            return SinkReport(self.name)
        local = run.config.publish.local
        with_text = bool(getattr(local, "results_with_text", False))
        parquet = getattr(local, "format", "parquet") == "parquet"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if parquet:
                rejected = write_parquet_part(directory, results)
                if with_text:
                    append_results(directory, results, with_text=True, compact=False)
            else:
                rejected = append_results(directory, results, with_text=with_text)
        except (OSError, ValueError) as exc:
            return SinkReport(self.name, error=f"cannot write {directory}: {exc}")
        report = SinkReport(self.name, details={"results_dir": str(directory)})
        if rejected:  # only those rows fail: every other pair is stored
            report.stored = {(row.item.id, row.metric_name) for row in results} - rejected.keys()
            (item_id, metric), reason = next(iter(rejected.items()))
            report.error = (
                f"{len(rejected)} row(s) could not be written to {f'{RESULTS_DIR}/' if parquet else RESULTS_FILE} "
                f"(first: item {item_id!r}, metric {metric!r}: {reason})"
            )
        return report


def append_results(
    directory: Path, results: EvaluationResult, *, with_text: bool = False, compact: bool = True
) -> dict[PairKey, str]:
    """Append one chunk to items.csv and results.csv (`compact`) and to the wide view (`with_text`);
    return the rows that could not be written, with the reason.

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
        metric_values = _metric_values(row, signals_at)
        if isinstance(metric_values, str):
            rejected[(row.item.id, row.metric_name)] = metric_values
            continue
        metric_line = encode(metric_values)
        scores.append(id_prefix + metric_line)
        if wide is not None:
            wide.append(text_prefix + metric_line)
    if compact:
        _append(directory / ITEMS_FILE, ITEM_COLUMNS, "".join(items))
        _append(directory / RESULTS_FILE, SCORE_COLUMNS, "".join(scores))
    if wide is not None:
        _append(directory / WIDE_FILE, RESULT_COLUMNS, "".join(wide))
    return rejected


def _metric_values(row: ResultRow, signals_at: int) -> list[Any] | str:
    """The row's metric columns with signals as JSON text, or why they cannot be written."""
    values = row.metric_values()
    try:
        values[signals_at] = orjson.dumps(values[signals_at], default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, ValueError, RecursionError) as exc:  # orjson.JSONEncodeError is a TypeError
        return f"signals: {exc}"
    return values


def write_parquet_part(directory: Path, results: EvaluationResult) -> dict[PairKey, str]:
    """One chunk as one more part file under items/ and results/ (zstd), each written atomically."""
    import pyarrow as pa

    signals_at = RESULT_COLUMNS.index("signals") - len(ITEM_COLUMNS)
    items: list[list[Any]] = []
    scores: list[list[Any]] = []
    rejected: dict[PairKey, str] = {}
    last_item: DatasetItem | None = None
    ids: list[Any] = []
    for row in results:
        if row.item is not last_item:
            last_item = row.item
            values = item_values(row.item)
            items.append(values)
            ids = values[: len(ITEM_ID_COLUMNS)]
        metric_values = _metric_values(row, signals_at)
        if isinstance(metric_values, str):
            rejected[(row.item.id, row.metric_name)] = metric_values
            continue
        scores.append([*ids, *metric_values])
    item_schema, score_schema = _parquet_schemas(pa)
    part = f"part-{_next_part(directory / RESULTS_DIR):05d}.parquet"
    _write_part(directory / ITEMS_DIR / part, _table(pa, item_schema, items))
    _write_part(directory / RESULTS_DIR / part, _table(pa, score_schema, scores))
    return rejected


def _parquet_schemas(pa: Any) -> tuple[Any, Any]:
    """Fixed column types, so every part file of a run (and of every run) reads as one table."""
    typed = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}  # the rest is text (signals: JSON text)
    types = {c.name: typed[c.type] for c in METRIC_FIELDS if c.type in typed}
    items = pa.schema([(name, pa.string()) for name in ITEM_COLUMNS])
    scores = pa.schema([(name, types.get(name, pa.string())) for name in SCORE_COLUMNS])
    return items, scores


_NONE = type(None)


def _table(pa: Any, schema: Any, rows: list[list[Any]]) -> Any:
    """Rows -> a typed table. Text columns take str() of anything else and float columns float();
    a column already of the right types (the usual case, checked with one `map(type, ...)`) goes
    to pyarrow as it is."""
    columns = []
    transposed = zip(*rows, strict=True) if rows else ([] for _ in schema)
    for field, column in zip(schema, transposed, strict=True):
        values = list(column)
        text, number = pa.types.is_string(field.type), pa.types.is_floating(field.type)
        if text and not set(map(type, values)) <= {str, _NONE}:
            values = [v if v is None or isinstance(v, str) else str(v) for v in values]
        elif number and not set(map(type, values)) <= {float, _NONE}:
            values = [None if v is None else float(v) for v in values]
        columns.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _next_part(directory: Path) -> int:
    return 1 + sum(1 for _ in directory.glob("part-*.parquet")) if directory.is_dir() else 1


def _write_part(path: Path, table: Any) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_results(run_dir: str | Path) -> Any:
    """A run's results as one pandas DataFrame, one row per (item, metric) with the item's text
    (the wide view), from either format: CSV files or Parquet parts."""
    import pandas as pd

    directory = Path(run_dir)
    if (directory / RESULTS_DIR).is_dir():
        scores = pd.read_parquet(directory / RESULTS_DIR)
        items = pd.read_parquet(directory / ITEMS_DIR)
    else:
        scores = pd.read_csv(directory / RESULTS_FILE, dtype={"id": str, "trace_id": str})
        items = pd.read_csv(directory / ITEMS_FILE, dtype={c: str for c in ITEM_COLUMNS})
    text = items.drop(columns=[c for c in ITEM_ID_COLUMNS if c != "id"])
    return scores.merge(text, on="id", how="left")[RESULT_COLUMNS]


def how_to_open(run_dir: str | Path) -> str:
    """One line for the console under the run folder's path: how to look at what is in it."""
    directory = Path(run_dir)
    shown = [name for name in ("report.html", WIDE_FILE) if (directory / name).is_file()]
    where = f"open {' or '.join(shown)} there, or in Python: " if shown else "in Python: "
    spreadsheet = "" if WIDE_FILE in shown else "  (a CSV for spreadsheets: publish.local.results_with_text: true)"
    return f'{where}evalmon.read_results("{directory}"){spreadsheet}'


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
