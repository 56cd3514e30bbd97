"""`source.type: file`: trace files in both shapes users have, and flat item tables.

- Langfuse v4 observation rows (JSONL of `GET /api/public/v2/observations` rows, camelCase), rows
  of one trace kept together (as exports and our generator write them): grouped by `traceId`
  while streaming, so memory holds one trace at a time.
- The older trace-with-observations shape (`GET /api/public/traces/{id}` of v3, trace exports):
  one JSON object per line, a JSON list, or an API page `{"data": [...]}`.
- CSV / Parquet item tables: each row is a mapping record for the field-path extractor.
Both trace shapes become `shared.langfuse.trace.Trace`, so extractors never care which it was.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field

from shared.errors import ConfigError
from shared.langfuse.trace import Trace
from shared.monitoring.sources.base import DataSource, InvalidRecord
from shared.monitoring.sources.filters import TraceFilterParams, keeps
from shared.monitoring.window import Window

_NO_ID = "\x00no-trace-id"
FileFormat = Literal["auto", "observations", "traces", "csv", "parquet"]


class FileSourceParams(TraceFilterParams):  # trace_name, tags, environment, user_id as in Langfuse
    path: str = Field(min_length=1, description="trace file, relative to the working directory")
    format: FileFormat = "auto"
    id_field: str = Field(default="id", description="id column of csv/parquet tables")
    timestamp_field: str = Field(default="timestamp", description="timestamp column of csv/parquet tables")


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
        """Group consecutive rows by traceId; a trace id seen again later is reported, not merged."""
        current: list[dict[str, Any]] = []
        current_id: str | None = None
        emitted: set[str] = set()

        def flush() -> Iterator[Trace | InvalidRecord]:
            if current_id is None or current_id == _NO_ID:
                return
            if current_id in emitted:
                yield InvalidRecord("trace rows are not contiguous in the file (sort rows by traceId)", current_id)
                return
            emitted.add(current_id)
            yield Trace.from_observations(current)

        for line_no, row in _json_records_numbered(self.file):
            if not isinstance(row, dict):
                yield InvalidRecord(
                    f"line {line_no}: not a JSON object" if row is not None else f"line {line_no}: bad JSON"
                )
                continue
            trace_id = row.get("traceId")
            if not isinstance(trace_id, str) or not trace_id.strip():
                # consecutive rows without a traceId are one broken trace, counted once
                if current_id != _NO_ID:
                    yield from flush()
                    current, current_id = [], _NO_ID
                    yield InvalidRecord(f"line {line_no}: observation without traceId", str(row.get("id") or ""))
                continue
            if trace_id != current_id:
                yield from flush()
                current, current_id = [], trace_id
            current.append(row)
        yield from flush()

    def _traces_from_v3(self) -> Iterator[Trace | InvalidRecord]:
        for line_no, record in _json_records_numbered(self.file):
            if not isinstance(record, dict):
                yield InvalidRecord(f"record {line_no}: not a trace object")
                continue
            yield Trace.from_v3(record)

    def _table_rows(self, fmt: FileFormat) -> Iterator[dict[str, Any]]:
        if fmt == "csv":
            with self.file.open(newline="", encoding="utf-8") as handle:
                yield from csv.DictReader(handle)
            return
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(self.file)
        for batch in parquet.iter_batches(batch_size=1000):
            yield from batch.to_pylist()


def _timestamp(record: Any) -> Any:
    if isinstance(record, Trace):
        return record.timestamp
    if isinstance(record, dict):
        from shared.langfuse.trace import parse_time

        return parse_time(record.get("timestamp") or record.get("source_timestamp"))
    return None


def _json_records(path: Path) -> Iterator[Any]:
    for _, record in _json_records_numbered(path):
        yield record


def _json_records_numbered(path: Path) -> Iterator[tuple[int, Any]]:
    """JSONL line by line (bad lines yield None); a whole-file JSON list or `{"data": [...]}` too."""
    with path.open(encoding="utf-8") as handle:
        first = handle.read(1)
        while first and first.isspace():
            first = handle.read(1)
        if first == "[" or (first == "{" and _is_single_document(path)):
            handle.seek(0)
            document = orjson.loads(handle.read())
            rows = document.get("data", [document]) if isinstance(document, dict) else document
            yield from enumerate(rows, start=1)
            return
        handle.seek(0)
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, orjson.loads(line)
            except ValueError:
                yield line_no, None


def _is_single_document(path: Path) -> bool:
    """A `.json` file holding one object (an API page), rather than JSON lines."""
    if path.suffix.lower() != ".json":
        return False
    with path.open(encoding="utf-8") as handle:
        handle.readline()
        return not handle.readline().lstrip().startswith("{")
