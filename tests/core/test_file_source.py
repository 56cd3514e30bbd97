from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from implementations.athena.generate_traces import generate_rows
from shared.monitoring.sources.base import InvalidRecord
from shared.monitoring.sources.file import FileDataSource, FileSourceParams
from shared.monitoring.window import Window
from shared.settings import Settings
from shared.traces import Trace

WIDE = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def read(path: Path, window: Window = WIDE) -> list[Any]:
    source = FileDataSource(FileSourceParams(path=str(path)), settings=Settings(), base_dir=path.parent)

    async def collect() -> list[Any]:
        return [r async for r in source.fetch(window)]

    return asyncio.run(collect())


def test_observation_rows_and_v3_traces_give_the_same_trace(tmp_path: Path) -> None:
    rows = list(generate_rows(5, seed=1, defects=False))
    (tmp_path / "obs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["traceId"]].append(row)
    v3 = []
    for trace_id, obs in grouped.items():
        root = next(o for o in obs if o["isRootObservation"])
        v3.append(
            {
                "id": trace_id,
                "name": root["traceName"],
                "timestamp": root["startTime"],
                "input": root["input"],
                "output": root["output"],
                "sessionId": root["sessionId"],
                "observations": obs,
            }
        )
    (tmp_path / "traces.json").write_text(json.dumps({"data": v3}), encoding="utf-8")

    a = read(tmp_path / "obs.jsonl")
    b = read(tmp_path / "traces.json")
    assert all(isinstance(t, Trace) for t in a + b) and len(a) == len(b) == 5
    for x, y in zip(a, b, strict=True):
        assert x.id == y.id and x.output == y.output and x.timestamp == y.timestamp
        assert x.recommendation.generation.id == y.recommendation.generation.id
        assert x.session_id == y.session_id


def test_missing_ids_bad_json_and_split_traces_are_invalid_not_fatal(tmp_path: Path) -> None:
    rows = list(generate_rows(3, seed=2, defects=False))
    lines = [json.dumps(r) for r in rows]
    lines.insert(1, "{not json")
    lines.append(json.dumps({**rows[0], "id": "late"}))  # trace 0 again, after others
    lines.append(json.dumps({"id": "orphan", "traceId": None}))
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    records = read(tmp_path / "mixed.jsonl")
    invalid = [r for r in records if isinstance(r, InvalidRecord)]
    traces = [r for r in records if isinstance(r, Trace)]
    assert len(traces) == 3
    reasons = " | ".join(r.reason for r in invalid)
    assert "bad JSON" in reasons and "not contiguous" in reasons and "without traceId" in reasons


def test_explicit_window_filters_by_trace_time(tmp_path: Path) -> None:
    rows = list(generate_rows(40, seed=4, defects=False))
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    window = Window(datetime(2026, 11, 19, tzinfo=UTC), datetime(2026, 11, 19, 12, tzinfo=UTC), explicit=True)
    inside = read(tmp_path / "t.jsonl", window)
    assert 0 < len(inside) < 40
    assert all(window.contains(t.timestamp) for t in inside)


def test_csv_table_rows(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("id,query,actual_output\n1,q1,a1\n,q2,a2\n", encoding="utf-8")
    rows = read(path)
    assert rows == [{"id": "1", "query": "q1", "actual_output": "a1"}, {"id": "", "query": "q2", "actual_output": "a2"}]
