"""Explicit paths when the default is not enough: observations by name or type, keys inside JSON
text, prompt sections split into documents, and a metric `field:` that checks the text inside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.errors import ConfigError
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import build_metric, read_field
from shared.monitoring.extractors import FieldPathExtractor, FieldSpec, extract_with_origins, get_path
from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.sinks.local import read_results
from shared.settings import Settings
from shared.traces import Trace
from tests.extraction.helpers import WINDOW, items_from_file
from tests.extraction.shapes import Case, generate, write_rows

ATHENA_FIELDS: dict[str, Any] = {
    "actual_output": "recommendation.output",
    "query": {"path": "recommendation.input", "section": "CASE ASSESSMENT"},
    "retrieved_content": {"path": "recommendation.input", "section": "CONTEXT DATA"},
}


@pytest.fixture(scope="module")
def athena() -> list[Case]:
    return generate("athena", 150, seed=9)


def trace_of(case: Case) -> Trace:
    return Trace.from_v3(case.trace)


def test_paths_name_observations_by_name_or_type_and_read_inside_json_text(athena: list[Case]) -> None:
    case = next(c for c in athena if c.truth.kind == "clean")
    trace = trace_of(case)
    rationale = json.loads(case.truth.answer or "")["rationale"]
    assert get_path(trace, "recommendation.output.rationale") == rationale
    assert get_path(trace, "type:GENERATION.output.rationale") == rationale  # the last GENERATION
    assert get_path(trace, "type:generation.0.output.city")  # the first: location-extraction
    assert get_path(trace, "type:SPAN.0.input.question") == case.truth.query
    assert get_path(trace, "rule-lookup.output.items.-1.text") == case.truth.docs[-1]
    assert get_path(trace, "recommendation.input.-1.content").startswith("CASE ASSESSMENT:")
    assert get_path(trace, "type:RETRIEVER.output") is None
    assert get_path(trace, "recommendation.output.rationale.deeper") is None


def test_prompt_sections_become_the_query_and_numbered_documents(athena: list[Case]) -> None:
    extractor = FieldPathExtractor(ATHENA_FIELDS)
    for case in athena:
        item, origins = extract_with_origins(extractor, trace_of(case))
        prompt = get_path(trace_of(case), "recommendation.input.-1.content")
        if prompt is None:  # athena drops the prompt of a few traces on purpose
            continue
        assert item.query and item.query.startswith(case.truth.query)
        docs = item.retrieved_content or []
        assert len(docs) == len(case.truth.docs) and all(t in d for t, d in zip(case.truth.docs, docs, strict=True))
        assert not any("UNDERWRITING FLAGS" in d for d in docs)  # the section ends at the next header
        assert origins["retrieved_content"] == "recommendation.input [section 'CONTEXT DATA']"


def test_a_section_can_end_at_named_headers() -> None:
    prompt = "CONTEXT DATA:\n[1] alpha\n[2] beta\nNote: read carefully\nFLAGS:\n- none"
    trace = Trace.from_observations(
        [{"id": "r", "traceId": "t", "type": "GENERATION", "name": "llm", "input": prompt, "output": "x [2]"}]
    )
    open_ended = FieldPathExtractor({"retrieved_content": {"path": "input", "section": "CONTEXT DATA"}})
    assert open_ended(trace).retrieved_content == ["alpha", "beta\nNote: read carefully"]
    bounded = FieldPathExtractor(
        {"retrieved_content": FieldSpec(path="input", section="CONTEXT DATA", until=("Note",))}
    )
    assert bounded(trace).retrieved_content == ["alpha", "beta"]


def test_read_field_follows_item_fields_json_text_and_extracted_trace_paths() -> None:
    item = DatasetItem(
        id="1",
        actual_output='{"decision": "refer", "rationale": "Because [1].", "scores": [1, 2]}',
        additional_output={"parsed": {"why": "nested"}},
        metadata={"field_paths": {"recommendation.output.rationale": "From the trace."}},
    )
    assert read_field(item, "actual_output.rationale") == "Because [1]."
    assert read_field(item, "actual_output.scores") == "[1, 2]"
    assert read_field(item, "additional_output.parsed.why") == "nested"
    assert read_field(item, "recommendation.output.rationale") == "From the trace."
    assert read_field(item, "actual_output.missing") is None
    assert read_field(item, "query") is None


def test_field_param_is_taken_by_every_metric_and_names_bad_values() -> None:
    plain = build_metric("non_empty", params={"field": "query"})
    assert plain.source_field is None and plain.params.field == "query"  # type: ignore[attr-defined]
    pathed = build_metric("citation_validity", params={"field": "actual_output.rationale"})
    assert pathed.source_field == "actual_output.rationale" and pathed.record_path is None
    traced = build_metric("pii_leakage", params={"field": "recommendation.output.rationale"})
    assert traced.record_path == "recommendation.output.rationale"
    assert traced.version != build_metric("pii_leakage").version
    with pytest.raises(ConfigError, match=r"metrics\.2\.params\.field"):
        build_metric("non_empty", params={"field": "  "}, field="metrics.2")


def run_athena_monitor(tmp_path: Path, traces: Path) -> dict[tuple[str, str], dict[str, Any]]:
    config = {
        "monitor": "athena-fields",
        "source": {"type": "file", "path": str(traces)},
        "window": {"since": WINDOW.since.isoformat(), "until": WINDOW.until.isoformat()},
        "extractor": "default",
        "extractor_fields": ATHENA_FIELDS,
        "metrics": [
            {"key": "json_valid"},  # the raw output
            {"key": "non_empty", "name": "rationale_present", "params": {"field": "recommendation.output.rationale"}},
            {"key": "pii_leakage", "name": "rationale_pii", "params": {"field": "actual_output.rationale"}},
            {"key": "citation_validity", "params": {"field": "actual_output.rationale"}},
        ],
        "dedup": {"store": "none"},
        "publish": {"local": {"dir": str(tmp_path / "runs")}},
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    summary = OnlineMonitor.from_yaml(path, settings=Settings(), base_dir=tmp_path).run()
    assert summary.status == "ok", summary.errors
    return {(r["trace_id"], r["metric_name"]): r for r in read_results(str(summary.results_dir)).to_dict("records")}


def test_one_monitor_checks_the_raw_json_and_the_rationale_inside_it(tmp_path: Path, athena: list[Case]) -> None:
    rows = run_athena_monitor(tmp_path, write_rows(athena, tmp_path / "athena.jsonl"))
    for case in athena:
        parsed = _parsed(case.truth.answer)
        rationale = parsed.get("rationale") if isinstance(parsed, dict) else None

        def passed(metric: str, case: Case = case) -> bool:
            return rows[case.id, metric]["passed"] is True

        assert passed("json_valid") == (parsed is not None)
        assert passed("rationale_present") == bool(rationale)
        assert passed("rationale_pii") == (case.truth.kind != "pii")
        if rationale:
            assert passed("citation_validity") == case.truth.citations_valid
    assert any(rows[c.id, "json_valid"]["passed"] is not True for c in athena)  # malformed outputs exist


def _parsed(answer: str | None) -> Any:
    try:
        return json.loads(answer or "")
    except ValueError:
        return None


def test_config_accepts_path_specs_and_rejects_unknown_spec_keys(tmp_path: Path, athena: list[Case]) -> None:
    traces = write_rows(athena[:5], tmp_path / "athena.jsonl")
    extractor = FieldPathExtractor(ATHENA_FIELDS)
    assert len(items_from_file(traces, extractor)) == 5
    bad = {
        "monitor": "bad",
        "source": {"type": "file", "path": str(traces)},
        "extractor_fields": {"retrieved_content": {"path": "recommendation.input", "sections": "CONTEXT DATA"}},
        "metrics": [{"key": "non_empty"}],
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(ConfigError, match="extractor_fields"):
        OnlineMonitor.from_yaml(path, settings=Settings(), base_dir=tmp_path)


def test_an_explicit_path_to_an_empty_answer_slot_reads_as_empty() -> None:
    """A path to a container whose answer slot is empty is an empty answer, not the container's JSON."""
    from shared.monitoring.extraction.text import as_text

    assert as_text({"output": None, "steps": 3}) is None
    assert as_text({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]}) is None
    assert as_text({"status": "completed", "steps": 4}) == '{"status": "completed", "steps": 4}'  # no answer slot
    assert as_text({"question": "hi", "output": None}) == "hi"
