"""Reading trace files defensively: every line becomes a JSON value or the reason it is not one.

Trace files are written by many hands (exports, scripts, generators), so one bad line must cost
one invalid record, never the run (architecture.md section 6). Here:

- bytes are read, not text: a UTF-8 BOM at the start is skipped, and a line that is not UTF-8
  (a stray Latin-1 byte) is one bad line instead of a UnicodeDecodeError that ends the file;
- orjson parses each line; the rare line it refuses is retried with the standard library, which
  accepts what the JSON grammar allows and orjson does not (escaped lone surrogates, as Langfuse
  can return them; the publish boundary makes those storable later);
- `observation_problem` / `trace_problem` check the fields the readers and `Trace` interpret
  against the types of the Langfuse API (ObservationV2, the v3 trace), so a row with, say, a
  numeric `startTime` or `observations: "nope"` is reported by field instead of crashing later.
  Types only: a time string that does not parse is read as "no time", as `Trace` always did.
  Free-form fields (input, output, metadata, and anything not listed) are not checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

BOM = b"\xef\xbb\xbf"
# What `errors="surrogateescape"` turns undecodable bytes into.
UNDECODABLE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class BadLine:
    """A line (or whole document) that is not a JSON value, and why."""

    reason: str


def loads(data: bytes) -> Any:
    """One JSON value from bytes, or a BadLine saying why not."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BadLine(f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return BadLine("bad JSON")


def json_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(number, value or BadLine) for each JSON line; a whole-file list or `{"data": [...]}` too."""
    with path.open("rb") as handle:
        start = len(BOM) if handle.read(len(BOM)) == BOM else 0
        handle.seek(start)
        first = handle.read(1)
        while first and first.isspace():
            first = handle.read(1)
        handle.seek(start)
        if first == b"[" or (first == b"{" and _is_single_document(path)):
            data = handle.read()
            document, undecodable = _document(data)
            if isinstance(document, BadLine) and data.strip().count(b"\n"):  # JSON lines after all
                yield from _lines(data.splitlines(keepends=True))
            else:
                yield from _document_records(document, undecodable)
            return
        yield from _lines(handle)


def _lines(lines: Iterable[bytes]) -> Iterator[tuple[int, Any]]:
    for line_no, line in enumerate(lines, start=1):
        if line.strip():
            yield line_no, loads(line)


def _document(data: bytes) -> tuple[Any, bool]:
    """The whole file as one JSON value (or a BadLine), and whether it held undecodable bytes."""
    document = loads(data)
    if isinstance(document, BadLine) and document.reason.startswith("not valid UTF-8"):
        try:  # parse anyway: only the records that carry the bad bytes are blamed
            return json.loads(data.decode("utf-8", errors="surrogateescape")), True
        except (ValueError, RecursionError):
            return BadLine("bad JSON"), True
    return document, False


def _document_records(document: Any, undecodable: bool) -> Iterator[tuple[int, Any]]:
    if isinstance(document, BadLine):
        yield 1, BadLine(f"the file is not a JSON document ({document.reason})")
        return
    rows = document.get("data", [document]) if isinstance(document, dict) else document
    if not isinstance(rows, list):
        rows = [rows]
    for number, row in enumerate(rows, start=1):
        yield number, BadLine("not valid UTF-8") if undecodable and _holds_undecodable(row) else row


def _holds_undecodable(value: Any) -> bool:
    if isinstance(value, str):
        return UNDECODABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_holds_undecodable(k) or _holds_undecodable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_undecodable(v) for v in value)
    return False


def _is_single_document(path: Path) -> bool:
    """A `.json` file holding one object (an API page), rather than JSON lines."""
    if path.suffix.lower() != ".json":
        return False
    with path.open("rb") as handle:
        handle.readline()
        return not handle.readline().lstrip().startswith(b"{")


# -- row checks -------------------------------------------------------------------------


@with_config(ConfigDict(strict=True))
class ObservationFields(TypedDict, total=False):
    """The typed fields of an observation (ObservationV2; v3 observations share them)."""

    id: str | None
    traceId: str | None
    parentObservationId: str | None
    type: str | None
    name: str | None
    traceName: str | None
    isRootObservation: bool | None
    startTime: str | None
    endTime: str | None
    userId: str | None
    sessionId: str | None
    environment: str | None
    release: str | None
    version: str | None
    level: str | None
    tags: list[str] | None
    latency: float | None


@with_config(ConfigDict(strict=True))
class TraceFields(TypedDict, total=False):
    """The typed fields of a v3 / export trace."""

    id: str | None
    name: str | None
    timestamp: str | None
    userId: str | None
    sessionId: str | None
    environment: str | None
    release: str | None
    version: str | None
    tags: list[str] | None
    observations: list[ObservationFields] | None


_OBSERVATION = TypeAdapter(ObservationFields)
_TRACE = TypeAdapter(TraceFields)


def observation_problem(row: dict[str, Any]) -> str | None:
    """Why an observation row cannot be read (first bad field), or None."""
    return _problem(_OBSERVATION, row)


def trace_problem(record: dict[str, Any]) -> str | None:
    """Why a v3 trace record cannot be read (first bad field, observations included), or None."""
    return _problem(_TRACE, record)


def _problem(adapter: TypeAdapter[Any], value: dict[str, Any]) -> str | None:
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        return f"{where}: {first['msg']} (got {type(first['input']).__name__})"
    return None
