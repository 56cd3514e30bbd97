"""`source.type: file`: trace files in both shapes users have, and flat item tables.

- Langfuse v4 observation rows (JSONL of `GET /api/public/v2/observations` rows, camelCase), rows
  of one trace kept together (as exports and our generator write them): grouped by `traceId`
  while streaming, so memory holds one trace at a time.
- The older trace-with-observations shape (`GET /api/public/traces/{id}` of v3, trace exports):
  one JSON object per line, a JSON list, or an API page `{"data": [...]}`.
- CSV / Parquet item tables: each row is a mapping record for the field-path extractor.
Both trace shapes become `shared.traces.Trace`, so extractors never care which it was.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from shared.errors import ConfigError
from shared.monitoring.sources.base import DataSource, InvalidRecord, register_source
from shared.monitoring.sources.file_rows import (
    UNDECODABLE,
    BadLine,
    json_records,
    observation_problem,
    trace_problem,
)
from shared.monitoring.sources.filters import TraceFilterParams, keeps
from shared.monitoring.window import Window
from shared.traces import Trace

_NO_ID = "\x00no-trace-id"
FileFormat = Literal["auto", "observations", "traces", "csv", "parquet"]


class FileSourceParams(TraceFilterParams):  # trace_name, tags, environment, user_id as in Langfuse
    path: str = Field(min_length=1, description="trace file, relative to the working directory")
    format: FileFormat = "auto"
    id_field: str = Field(default="id", description="id column of csv/parquet tables")
    timestamp_field: str = Field(default="timestamp", description="timestamp column of csv/parquet tables")


@register_source("file")
class FileDataSource(DataSource):
    type_key = "file"
    ordering = "unordered"
    filters_by_default_window = False
    Params = FileSourceParams

    @property
    def file(self) -> Path:
        assert isinstance(self.params, FileSourceParams)
        path = Path(self.params.path)
        return path if path.is_absolute() else self.base_dir / path

    def default_key(self) -> str:
        return f"file:{self.file.stem}"

    async def check(self) -> None:
        if not self.file.is_file():
            raise ConfigError(f"trace file not found: {self.file}", field="source.path")

    def detect_format(self) -> FileFormat:
        assert isinstance(self.params, FileSourceParams)
        if self.params.format != "auto":
            return self.params.format
        suffix = self.file.suffix.lower()
        if suffix == ".csv":
            return "csv"
        if suffix in (".parquet", ".pq"):
            return "parquet"
        for record in _json_records(self.file):
            if isinstance(record, dict):
                return "observations" if "traceId" in record and "observations" not in record else "traces"
        return "traces"

    async def fetch(self, window: Window) -> AsyncIterator[Any]:
        fmt = self.detect_format()
        self.stats.requests = 1
        if fmt == "observations":
            records: Iterator[Any] = self._traces_from_observations()
        elif fmt == "traces":
            records = self._traces_from_v3()
        else:
            records = self._table_rows(fmt)
        for record in records:
            if window.explicit and not isinstance(record, InvalidRecord) and not window.contains(_timestamp(record)):
                continue
            if not isinstance(record, InvalidRecord) and not keeps(record, self.params):
                continue
            yield record

    # -- readers -----------------------------------------------------------------------
    def _traces_from_observations(self) -> Iterator[Trace | InvalidRecord]:
        """Group consecutive rows by traceId; a trace id seen again later is reported, not merged.

        A row that cannot be read (bad JSON, not UTF-8, a field of the wrong type) costs one
        invalid record: its own line, or the whole trace when the row names its traceId.
        """
        current: list[dict[str, Any]] = []
        current_id: str | None = None
        broken: str | None = None  # why the current trace cannot be read
        emitted: set[str] = set()

        def flush() -> Iterator[Trace | InvalidRecord]:
            if current_id is None or current_id == _NO_ID:
                return
            if current_id in emitted:
                yield InvalidRecord("trace rows are not contiguous in the file (sort rows by traceId)", current_id)
                return
            emitted.add(current_id)
            yield InvalidRecord(broken, current_id) if broken else Trace.from_observations(current)

        for line_no, row in json_records(self.file):
            if isinstance(row, BadLine):
                yield InvalidRecord(f"line {line_no}: {row.reason}")
                continue
            if not isinstance(row, dict):
                yield InvalidRecord(f"line {line_no}: not a JSON object")
                continue
            trace_id = row.get("traceId")
            if not isinstance(trace_id, str) or not trace_id.strip():
                # consecutive rows without a traceId are one broken trace, counted once
                if current_id != _NO_ID:
                    yield from flush()
                    current, current_id = [], _NO_ID
                    yield InvalidRecord(f"line {line_no}: observation without traceId", _ref(row))
                continue
            if trace_id != current_id:
                yield from flush()
                current, current_id, broken = [], trace_id, None
            problem = observation_problem(row)
            if problem and broken is None:
                broken = f"line {line_no}: {problem}"
            current.append(row)
        yield from flush()

    def _traces_from_v3(self) -> Iterator[Trace | InvalidRecord]:
        for line_no, record in json_records(self.file):
            if isinstance(record, BadLine):
                yield InvalidRecord(f"record {line_no}: {record.reason}")
                continue
            if not isinstance(record, dict):
                yield InvalidRecord(f"record {line_no}: not a trace object")
                continue
            problem = trace_problem(record)
            if problem:
                yield InvalidRecord(f"record {line_no}: {problem}", _ref(record))
                continue
            yield Trace.from_v3(record)

    def _table_rows(self, fmt: FileFormat) -> Iterator[dict[str, Any] | InvalidRecord]:
        if fmt == "csv":
            yield from _csv_rows(self.file)
            return
        import pyarrow
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self.file)
        except (pyarrow.ArrowException, OSError) as exc:
            raise ConfigError(f"{self.file} is not a readable Parquet file ({exc})", field="source.path") from None
        for batch in parquet.iter_batches(batch_size=1000):
            yield from batch.to_pylist()


def _timestamp(record: Any) -> Any:
    if isinstance(record, Trace):
        return record.timestamp
    if isinstance(record, dict):
        from shared.traces import parse_time

        return parse_time(record.get("timestamp") or record.get("source_timestamp"))
    return None


def _json_records(path: Path) -> Iterator[Any]:
    for _, record in json_records(path):
        yield record


def _csv_rows(path: Path) -> Iterator[dict[str, Any] | InvalidRecord]:
    """CSV rows as mappings; a row with bytes that are not UTF-8, or that csv refuses, is one invalid record."""
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        reader = csv.DictReader(handle)
        number = 0
        while True:
            number += 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield InvalidRecord(f"row {number}: {exc}")
                continue
            if any(isinstance(v, str) and UNDECODABLE.search(v) for pair in row.items() for v in pair):
                yield InvalidRecord(f"row {number}: not valid UTF-8")
                continue
            yield row


def _ref(record: dict[str, Any]) -> str:
    """The record's own id, for the debug log of invalid records."""
    value = record.get("id")
    return value if isinstance(value, str) else ""
