"""The athena trace generator: v2 observation rows, deterministic, with the intended defect mix."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
import yaml
from contracts import langfuse_spec

from implementations.athena.generate_traces import (
    DEFAULT_BASE_TIME,
    DEFECT_WEIGHTS,
    FIELD_GROUPS,
    GeneratedTrace,
    generate_traces,
    main,
    write_traces,
)
from shared.traces import parse_time

from .helpers import SAMPLE, group_rows, read_jsonl


@cache
def observation_v2_fields() -> frozenset[str]:
    spec = yaml.safe_load(langfuse_spec().read_text(encoding="utf-8"))
    return frozenset(spec["components"]["schemas"]["ObservationV2"]["properties"])


def test_rows_have_exactly_the_observation_v2_fields() -> None:
    fields = observation_v2_fields()
    rows = [row for trace in generate_traces(30, seed=3) for row in trace.rows]
    assert {frozenset(row) for row in rows} == {fields}
    assert set().union(*FIELD_GROUPS.values()) == fields


def test_trace_shape_root_span_and_steps() -> None:
    clean = [t for t in generate_traces(50, seed=3, defects=False)]
    for trace in clean:
        root, *children = trace.rows
        assert root["type"] == "SPAN" and root["isRootObservation"] is True and root["parentObservationId"] is None
        assert root["name"] == "underwriting-recommendation"
        assert [(c["name"], c["type"]) for c in children] == [
            ("location-extraction", "GENERATION"),
            ("rule-lookup", "SPAN"),
            ("recommendation", "GENERATION"),
        ]
        assert all(c["parentObservationId"] == root["id"] and c["isRootObservation"] is False for c in children)
        assert {r["traceId"] for r in trace.rows} == {trace.trace_id}
        # input/output are raw strings, as the v2 API returns them; structured ones are JSON
        for row in trace.rows:
            assert isinstance(row["input"], str) and isinstance(row["output"], str)
        answer = json.loads(children[-1]["output"])
        assert answer["decision"] == trace.decision
        prompt = json.loads(children[-1]["input"])[-1]["content"]
        assert "CASE ASSESSMENT:" in prompt and "CONTEXT DATA:\n[1] (" in prompt and "UNDERWRITING FLAGS:" in prompt
        assert json.loads(root["output"])["decision"] == trace.decision


def test_ids_look_like_langfuse_v4_ids_and_are_unique() -> None:
    traces = list(generate_traces(200, seed=5, defects=False))
    trace_ids = [t.trace_id for t in traces]
    obs_ids = [row["id"] for t in traces for row in t.rows]
    assert len(set(trace_ids)) == len(trace_ids) and len(set(obs_ids)) == len(obs_ids)
    assert all(len(i or "") == 32 and int(i or "x", 16) >= 0 for i in trace_ids)
    assert all(len(i) == 16 for i in obs_ids)


def test_same_seed_same_traces_other_seed_other_traces() -> None:
    first = [t.rows for t in generate_traces(40, seed=7)]
    again = [t.rows for t in generate_traces(40, seed=7)]
    other = [t.rows for t in generate_traces(40, seed=8)]
    assert first == again
    assert first != other


def test_times_spread_over_the_hours_before_base_time() -> None:
    base = datetime(2025, 3, 1, 12, tzinfo=UTC)
    traces = list(generate_traces(300, seed=1, base_time=base, hours=48))
    starts = [parse_time(t.rows[0]["startTime"]) for t in traces]
    assert all(s is not None and base - timedelta(hours=48) <= s < base for s in starts)
    spread = max(s for s in starts if s) - min(s for s in starts if s)
    assert spread > timedelta(hours=40)
    for trace in traces:  # children inside the root span; end after start
        root = trace.rows[0]
        for row in trace.rows:
            start, end = parse_time(row["startTime"]), parse_time(row["endTime"])
            assert start is not None and start >= parse_time(root["startTime"])  # type: ignore[operator]
            if end is not None:
                assert end >= start
    # not written in time order: samplers must sort by timestamp themselves
    assert starts != sorted(starts)  # type: ignore[type-var]


def test_defect_mix_of_a_sample_sized_run(generated: list[GeneratedTrace]) -> None:
    traces = list(generate_traces(300, seed=7))
    defects = Counter(t.defect for t in traces)
    assert set(DEFECT_WEIGHTS) <= set(defects), "every defect kind appears in 300 traces"
    share = 1 - defects[None] / len(traces)
    assert 0.2 <= share <= 0.3
    missing = [t for t in traces if not (t.trace_id or "").strip()]
    assert 2 <= len(missing) <= 3
    decisions = Counter(t.decision for t in traces)
    assert all(decisions[d] >= 20 for d in ("approve", "decline", "refer"))
    # 1,000 traces: the shares hold too
    share_1000 = sum(1 for t in generated if t.defect) / len(generated)
    assert 0.2 <= share_1000 <= 0.3


def test_defects_show_in_the_rows(generated: list[GeneratedTrace]) -> None:
    def outputs(defect: str) -> list[str | None]:
        return [
            t.rows[-1]["output"] for t in generated if t.defect == defect and t.rows[-1]["name"] == "recommendation"
        ]

    assert all(o in ("", None) for o in outputs("empty_output"))
    for raw in outputs("malformed_json"):
        with pytest.raises(ValueError):
            json.loads(raw or "")
    assert all(len(o or "") > 10_000 for o in outputs("very_long"))
    assert all(not (o or "").isascii() for o in outputs("unicode"))
    for raw in outputs("missing_decision"):
        assert json.loads(raw or "{}").get("decision") not in ("approve", "decline", "refer")
    for raw in outputs("refer_without_reason"):
        answer = json.loads(raw or "{}")
        assert answer["decision"] == "refer" and "refer_reason" not in answer


def test_missing_ids_are_empty_null_or_blank_on_every_row() -> None:
    traces = list(generate_traces(300, seed=7))
    missing = [t for t in traces if not (t.trace_id or "").strip()]
    kinds = {t.trace_id for t in missing}
    assert kinds <= {"", None, "   "} and len(kinds) >= 2
    for trace in missing:
        assert {row["traceId"] for row in trace.rows} == {trace.trace_id}


def test_write_traces_keeps_rows_of_a_trace_together(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    stats = write_traces(out, 120, seed=2)
    rows = read_jsonl(out)
    assert stats.traces == 120 and stats.rows == len(rows) and stats.bytes == out.stat().st_size
    groups = group_rows(rows)
    ids = [g[0]["traceId"] for g in groups if (g[0]["traceId"] or "").strip()]
    assert len(ids) == len(set(ids)), "a trace id never reappears after its rows ended"
    assert len(groups) == 120


def test_template_mode_fresh_ids_and_times_same_shape(tmp_path: Path) -> None:
    out = tmp_path / "many.jsonl"
    stats = write_traces(out, 2_000, seed=4, variety=40)
    rows = read_jsonl(out)
    groups = group_rows(rows)
    assert stats.traces == 2_000 and len(groups) == 2_000 and stats.rows == len(rows)
    good = [g for g in groups if (g[0]["traceId"] or "").strip()]
    assert len({g[0]["traceId"] for g in good}) == len(good)
    assert len({r["id"] for r in rows}) == len(rows)
    assert 15 <= len(groups) - len(good) <= 25  # about 1% missing ids
    starts = {g[0]["startTime"] for g in groups}
    assert len(starts) > 1_900
    for group in good[:50]:  # ids are wired: children point at their root
        root = group[0]
        assert root["isRootObservation"] and all(r["parentObservationId"] == root["id"] for r in group[1:])
        assert all(r["traceId"] == root["traceId"] for r in group)
        assert parse_time(root["endTime"]) is None or parse_time(root["endTime"]) >= parse_time(root["startTime"])  # type: ignore[operator]
    assert 0.15 <= 1 - stats.defects["clean"] / stats.traces <= 0.35


def test_field_groups_trim_rows_like_the_fields_parameter(tmp_path: Path) -> None:
    trace = next(generate_traces(1, seed=1, field_groups=["io", "basic"]))
    expected = set(FIELD_GROUPS["core"]) | set(FIELD_GROUPS["io"]) | set(FIELD_GROUPS["basic"])
    assert all(set(row) == expected for row in trace.rows)
    with pytest.raises(ValueError, match="unknown field group"):
        next(generate_traces(1, field_groups=["nope"]))


def test_cli_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.jsonl"
    assert main(["--n", "25", "--seed", "7", "--out", str(out), "--base-time", "2026-01-01T00:00:00Z"]) == 0
    rows = read_jsonl(out)
    assert len(group_rows(rows)) == 25
    assert all(r["startTime"] < "2026-01-01" for r in rows)
    assert "wrote 25 traces" in capsys.readouterr().err


def test_bundled_sample_is_what_the_generator_writes(tmp_path: Path) -> None:
    """data/samples/athena_traces.jsonl is regenerated, never hand-edited: the command in the docs
    reproduces it byte for byte."""
    out = tmp_path / "sample.jsonl"
    write_traces(out, 300, seed=7, base_time=DEFAULT_BASE_TIME)
    assert out.read_bytes() == SAMPLE.read_bytes(), (
        "regenerate: python -m implementations.athena.generate_traces --n 300 --seed 7 "
        "--out data/samples/athena_traces.jsonl"
    )
