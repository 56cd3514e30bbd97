"""A malformed line in a trace file is one counted invalid record; the trace after it still scores."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from implementations.athena.generate_traces import generate_rows
from shared.cli import app
from shared.monitoring.ledger.csv_store import read_rows
from shared.monitoring.sources.base import InvalidRecord
from shared.monitoring.sources.file import FileDataSource, FileSourceParams
from shared.monitoring.window import Window
from shared.settings import Settings
from shared.traces import Trace, TraceCollection
from tests.core.conftest import write_config

WIDE = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
LATIN1 = "café".encode("latin-1")  # b"caf\xe9": not UTF-8


def read(path: Path) -> list[Any]:
    source = FileDataSource(FileSourceParams(path=str(path)), settings=Settings(), base_dir=path.parent)

    async def collect() -> list[Any]:
        return [r async for r in source.fetch(WIDE)]

    return asyncio.run(collect())


def rows(n: int, seed: int) -> list[dict[str, Any]]:
    return list(generate_rows(n, seed=seed, defects=False))


def v3_traces(n: int, seed: int) -> list[dict[str, Any]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows(n, seed):
        grouped[row["traceId"]].append(row)
    traces = []
    for trace_id, observations in grouped.items():
        root = next(o for o in observations if o["isRootObservation"])
        traces.append(
            {
                "id": trace_id,
                "name": root["traceName"],
                "timestamp": root["startTime"],
                "input": root["input"],
                "output": root["output"],
                "tags": root["tags"],
                "observations": observations,
            }
        )
    return traces


def line(value: Any) -> bytes:
    return json.dumps(value).encode() + b"\n"


BAD_V3 = [
    b'{"id": "x", "observations": "nope"}\n',
    b'{"id": "y", "observations": [1, null]}\n',
    b'{"id": "z", "name": "' + LATIN1 + b'", "observations": []}\n',
    b'{"id": "t", "timestamp": 1700000000, "observations": []}\n',
    b'{"id": "u", "tags": "one-tag", "observations": []}\n',
    b'{"id": "v", "observations": [{"id": "o", "startTime": 12}]}\n',
    b'{"id": ["w"], "observations": []}\n',
    b"[1, 2]\n",
    b"{broken\n",
]


def test_every_malformed_v3_line_is_one_invalid_record_and_the_next_trace_reads(tmp_path: Path) -> None:
    good = v3_traces(len(BAD_V3) + 1, seed=5)
    data = b"\xef\xbb\xbf" + line(good[0])  # a BOM first: the first trace must still read
    for bad, trace in zip(BAD_V3, good[1:], strict=True):
        data += bad + line(trace)
    path = tmp_path / "traces.jsonl"
    path.write_bytes(data)

    records = read(path)
    traces = [r for r in records if isinstance(r, Trace)]
    invalid = [r for r in records if isinstance(r, InvalidRecord)]
    assert [t.id for t in traces] == [t["id"] for t in good]
    assert len(invalid) == len(BAD_V3)
    reasons = [r.reason for r in invalid]
    assert "observations" in reasons[0] and "observations.0" in reasons[1]
    assert "not valid UTF-8" in reasons[2] and "timestamp" in reasons[3] and "tags" in reasons[4]
    assert "observations.0.startTime" in reasons[5] and "id" in reasons[6]


def test_malformed_observation_rows_cost_their_trace_only(tmp_path: Path) -> None:
    good = rows(6, seed=6)
    trace_ids = list(dict.fromkeys(r["traceId"] for r in good))
    broken = {
        trace_ids[1]: {"startTime": 1700000000},
        trace_ids[2]: {"isRootObservation": "yes"},
        trace_ids[3]: {"tags": [1, 2]},
    }
    data = b"\xef\xbb\xbf"
    for row in good:
        changes = broken.get(row["traceId"], {}) if row["isRootObservation"] else {}
        data += line({**row, **changes})
        if row["traceId"] == trace_ids[4] and row["isRootObservation"]:
            data += b'{"id": "latin", "traceId": "' + LATIN1 + b'"}\n'  # a line of its own, not UTF-8
    path = tmp_path / "observations.jsonl"
    path.write_bytes(data)

    records = read(path)
    scored = [r.id for r in records if isinstance(r, Trace)]
    assert scored == [trace_ids[0], trace_ids[4], trace_ids[5]]
    reasons = {r.ref: r.reason for r in records if isinstance(r, InvalidRecord)}
    assert "startTime" in reasons[trace_ids[1]] and "isRootObservation" in reasons[trace_ids[2]]
    assert "tags.0" in reasons[trace_ids[3]]
    assert any("not valid UTF-8" in r for r in reasons.values())


def test_a_json_document_with_a_bad_byte_loses_only_that_record(tmp_path: Path) -> None:
    good = v3_traces(3, seed=7)
    good[1]["name"] = "MARKER"
    body = json.dumps({"data": good}).encode().replace(b"MARKER", LATIN1)  # trace 2's name is now Latin-1
    path = tmp_path / "page.json"
    path.write_bytes(b"\xef\xbb\xbf" + body)
    records = read(path)
    assert [r.id for r in records if isinstance(r, Trace)] == [good[0]["id"], good[2]["id"]]
    assert [r.reason for r in records if isinstance(r, InvalidRecord)] == ["record 2: not valid UTF-8"]


def test_csv_rows_with_bad_bytes_are_invalid_and_a_bom_is_not_part_of_the_header(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_bytes(b"\xef\xbb\xbfid,query\r\n1,fine\r\n2," + LATIN1 + b"\r\n3,also fine\r\n")
    records = read(path)
    assert [r["id"] for r in records if isinstance(r, dict)] == ["1", "3"]
    assert [r.reason for r in records if isinstance(r, InvalidRecord)] == ["row 2: not valid UTF-8"]


@pytest.mark.parametrize("fmt", ["v3", "observations"])
def test_a_monitor_run_over_a_file_full_of_bad_types_scores_every_good_trace(tmp_path: Path, fmt: str) -> None:
    """Bad types anywhere: each top-level field of a trace, and of its root observation, replaced in turn."""
    good = v3_traces(40, seed=8)
    wrong_values: list[Any] = [12, ["x"], {"a": 1}, True, "not a date", None]
    data = b""
    expected: list[str] = []
    variants = iter(good)
    sentinel = next(variants)
    data += _serialise(sentinel, fmt)
    expected.append(sentinel["id"])
    for field_name in ("name", "timestamp", "input", "output", "tags", "observations", "sessionId"):
        for wrong in wrong_values:
            bad = json.loads(json.dumps(sentinel))
            bad["id"] = f"bad-{field_name}-{len(expected)}"
            bad[field_name] = wrong
            for o in bad["observations"] if isinstance(bad["observations"], list) else []:
                if isinstance(o, dict):
                    o["traceId"] = bad["id"]
            data += _serialise(bad, fmt)
            following = next(variants, None)
            if following is None:
                variants = iter(v3_traces(40, seed=len(expected)))
                following = next(variants)
            data += _serialise(following, fmt)
            expected.append(following["id"])
    path = tmp_path / ("traces.jsonl" if fmt == "v3" else "observations.jsonl")
    path.write_bytes(data)

    config = write_config(tmp_path, path, metrics=[{"key": "non_empty"}])
    result = CliRunner().invoke(app, ["-q", "run", str(config), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    scored = {r[2] for r in read_rows(tmp_path / "ledger.csv")}  # item_id
    assert set(expected) <= scored  # every trace after a bad one was scored
    assert summary["counts"]["invalid"] + len(scored) == summary["counts"]["fetched"]


def _serialise(trace: dict[str, Any], fmt: str) -> bytes:
    if fmt == "v3":
        return line(trace)
    observations = trace["observations"] if isinstance(trace["observations"], list) else []
    out = b""
    for o in observations:
        if not isinstance(o, dict):
            out += line(o)
            continue
        if o.get("isRootObservation"):  # the trace-level fields live on the root row in v4
            o = {
                **o,
                "traceName": trace["name"],
                "startTime": trace["timestamp"],
                "input": trace["input"],
                "output": trace["output"],
                "tags": trace["tags"],
                "sessionId": trace.get("sessionId"),
            }
        out += line(o)
    return out


def test_trace_constructors_refuse_malformed_observations_with_a_clear_error(tmp_path: Path) -> None:
    for bad in ("nope", [1, None], {"id": "o"}):
        with pytest.raises(ValueError, match="observations must be a list of objects"):
            Trace.from_v3({"id": "x", "observations": bad})
    with pytest.raises(ValueError, match="observation rows must be a list of objects"):
        Trace.from_observations([{"id": "o", "traceId": "t"}, 3])  # type: ignore[list-item]
    path = tmp_path / "traces.jsonl"
    path.write_bytes(line({"id": "x", "observations": "nope"}) + line(v3_traces(1, seed=9)[0]))
    collection = TraceCollection.from_file(path)
    assert len(collection) == 1 and collection.invalid == ["record 1: observations must be a list of objects, not str"]


def test_trace_collection_reads_files_as_robustly_as_the_file_source(tmp_path: Path) -> None:
    """Notebooks load files through TraceCollection: a BOM, bad bytes and bad shapes are counted, not fatal."""
    path = tmp_path / "traces.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"id":"t1","observations":[{"id":"o1","type":"SPAN","output":"hi"}]}\n'
        b'{"id":"bad\xe9","observations":[]}\n'
        b'{"id":"x","observations":"nope"}\n'
        b'{"id":"t2","observations":[{"id":"o2","type":"SPAN","output":"yo"}]}\n'
    )
    collection = TraceCollection.from_file(path)
    assert [t.id for t in collection] == ["t1", "t2"]
    assert len(collection.invalid) == 2 and "UTF-8" in collection.invalid[0]
