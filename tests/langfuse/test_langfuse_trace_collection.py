"""TraceCollection: load from files (both shapes) or Langfuse, filter, save, turn into items."""

import json
from pathlib import Path

from conftest import WINDOW_SINCE, WINDOW_UNTIL
from fakes.langfuse_server import FakeLangfuse, generate_traces

from shared.evaluation.item import DatasetItem
from shared.settings import Settings
from shared.traces import Trace, TraceCollection


def write_rows(path: Path, n: int) -> list[dict]:
    rows = list(generate_traces(n, since=WINDOW_SINCE, until=WINDOW_UNTIL))
    rows = rows[1::2] + rows[::2]  # rows of one trace need not be contiguous
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return rows


def extractor(trace: Trace) -> DatasetItem:
    return DatasetItem(id=trace.id or "", query=trace.input["query"], actual_output=trace.recommendation.output)


def test_observation_rows_file_groups_traces(tmp_path: Path) -> None:
    write_rows(tmp_path / "rows.jsonl", 8)
    traces = TraceCollection.from_file(tmp_path / "rows.jsonl")
    assert len(traces) == 8 and all(len(t.observations) == 3 for t in traces)
    assert traces[0].recommendation.generation.input[1]["content"].startswith("Question:")


def test_save_json_round_trips_in_the_trace_shape(tmp_path: Path) -> None:
    write_rows(tmp_path / "rows.jsonl", 5)
    traces = TraceCollection.from_file(tmp_path / "rows.jsonl")
    for name in ("out.jsonl", "out.json"):
        again = TraceCollection.from_file(traces.save_json(tmp_path / name))
        assert [t.id for t in again] == [t.id for t in traces]
        assert [t.to_dict() for t in again] == [t.to_dict() for t in traces]


def test_filter_by_fields_steps_and_predicates(tmp_path: Path) -> None:
    write_rows(tmp_path / "rows.jsonl", 10)
    traces = TraceCollection.from_file(tmp_path / "rows.jsonl")
    assert len(traces.filter_by(tags="beta")) == 5
    assert len(traces.filter_by(user_id="user-3")) == 1
    assert len(traces.filter_by(has_step="recommendation")) == 10
    assert len(traces.filter_by(has_step="nope")) == 0
    assert len(traces.filter_by(lambda t: "Lisbon" in t.input["query"])) == 2


def test_to_items_collects_failures_instead_of_raising(tmp_path: Path) -> None:
    write_rows(tmp_path / "rows.jsonl", 4)
    traces = TraceCollection.from_file(tmp_path / "rows.jsonl")
    broken = Trace({"id": "broken", "input": "not a dict"})
    mixed = TraceCollection([*traces, broken])
    items = mixed.to_items(extractor)
    assert len(items) == 4 and items[0].actual_output.startswith("In ")
    assert len(mixed.invalid) == 1 and mixed.invalid[0].startswith("broken:")


def test_from_langfuse_uses_the_source_filters(fake: FakeLangfuse, lf_settings: Settings) -> None:
    fake.seed_observations(generate_traces(30, since=WINDOW_SINCE, until=WINDOW_UNTIL))
    fake.seed_observations(generate_traces(5, since=WINDOW_SINCE, until=WINDOW_UNTIL, seed=9, trace_name="other"))
    traces = TraceCollection.from_langfuse(
        lf_settings, since=WINDOW_SINCE, until=WINDOW_UNTIL, trace_name="athena", page_size=10
    )
    assert len(traces) == 30 and {t.name for t in traces} == {"athena"}
    capped = TraceCollection.from_langfuse(lf_settings, since=WINDOW_SINCE, until=WINDOW_UNTIL, limit=7)
    assert len(capped) == 7
