"""extract_recommendation on good traces, on every defect, and on hostile input."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from implementations.athena.extractors import extract_recommendation, parse_answer
from implementations.athena.generate_traces import GeneratedTrace, generate_traces
from implementations.athena.langfuse.prompt_patterns import AthenaPromptPatterns
from implementations.athena.metrics import ReferReasonGiven
from shared.errors import InvalidRecordError
from shared.traces import Trace

from .helpers import SAMPLE, as_trace, by_defect, group_rows, read_jsonl


def clean_trace(seed: int = 3) -> GeneratedTrace:
    return next(generate_traces(1, seed=seed, defects=False))


def test_item_from_a_clean_trace() -> None:
    generated = clean_trace()
    rows = generated.rows
    root, _, lookup, rec = rows
    item = extract_recommendation(Trace.from_observations(rows))
    answer = json.loads(rec["output"])
    prompt = json.loads(rec["input"])[-1]["content"]

    assert item.id == item.trace_id == generated.trace_id
    assert item.observation_id == rec["id"]
    assert item.session_id == root["sessionId"]
    assert item.query and item.query in prompt and "CASE ASSESSMENT" not in item.query
    assert item.actual_output == answer["rationale"]
    # retrieved_content is CONTEXT DATA in prompt order: [n] is the n-th entry
    lookup_items = json.loads(lookup["output"])["items"]
    assert item.retrieved_content == [f"({i['id']}) {i['text']}" for i in lookup_items]
    assert item.additional_input["retrieved_ids"] == [i["id"] for i in lookup_items]
    flags_block = prompt.split("UNDERWRITING FLAGS:\n")[1].split("\n\n")[0]
    expected_flags = [line[2:] for line in flags_block.splitlines() if line != "- none"]
    assert item.additional_input["underwriting_flags"] == expected_flags
    assert item.additional_input["location"]["city"]
    assert item.additional_output["decision"] == generated.decision
    assert item.additional_output["output_format"] == "json"
    assert item.additional_output["parsed_output"] == answer
    assert item.latency == pytest.approx(root["latency"])
    assert item.source_timestamp is not None and item.source_timestamp.isoformat().startswith(root["startTime"][:19])
    assert item.metadata["prompt_name"] == "athena-recommendation" and item.metadata["model"] == "gpt-4.1"


def test_citations_index_into_retrieved_content(generated: list[GeneratedTrace]) -> None:
    """For clean traces every [n] in the rationale names an existing context item."""
    for trace in by_defect(generated, None)[:100]:
        item = extract_recommendation(as_trace(trace))
        cited = [int(n) for n in re.findall(r"\[(\d+)\]", item.actual_output or "")]
        assert cited and all(1 <= n <= len(item.retrieved_content or []) for n in cited)


def test_every_generated_trace_becomes_an_item_or_an_invalid_record(generated: list[GeneratedTrace]) -> None:
    invalid: list[GeneratedTrace] = []
    for trace in generated:
        try:
            item = extract_recommendation(as_trace(trace))
        except InvalidRecordError:
            invalid.append(trace)
            continue
        assert item.id.strip()
    missing_id = [t for t in generated if not (t.trace_id or "").strip()]
    no_step = [t for t in generated if not any(r["name"] == "recommendation" for r in t.rows)]
    assert {id(t) for t in invalid} == {id(t) for t in missing_id + no_step}
    assert len(missing_id) >= 2


@pytest.mark.parametrize(
    ("defect", "output_format"),
    [("empty_output", "empty"), ("malformed_json", "malformed_json"), ("very_long", "json"), ("unicode", "json")],
)
def test_defective_outputs_are_items(generated: list[GeneratedTrace], defect: str, output_format: str) -> None:
    traces = by_defect(generated, defect)
    assert traces
    for trace in traces:
        item = extract_recommendation(as_trace(trace))
        assert item.additional_output["output_format"] == output_format
        if defect == "malformed_json":
            raw = trace.rows[-1]["output"]
            assert item.actual_output == raw  # the raw text stays checkable (PII, citations)
            assert item.additional_output["parsed_output"] is None
        if defect == "empty_output":
            assert not (item.actual_output or "").strip() and item.additional_output["decision"] is None


def test_missing_decision_and_refer_without_reason(generated: list[GeneratedTrace]) -> None:
    for trace in by_defect(generated, "missing_decision"):
        decision = extract_recommendation(as_trace(trace)).additional_output["decision"]
        assert decision not in ("approve", "decline", "refer")
    for trace in by_defect(generated, "refer_without_reason"):
        out = extract_recommendation(as_trace(trace)).additional_output
        assert out["decision"] == "refer" and out["refer_reason"] is None


def test_missing_fields_still_give_an_item_with_what_is_there(generated: list[GeneratedTrace]) -> None:
    traces = [t for t in by_defect(generated, "missing_fields") if any(r["name"] == "recommendation" for r in t.rows)]
    assert traces
    for trace in traces:
        item = extract_recommendation(as_trace(trace))
        names = {r["name"] for r in trace.rows}
        recommendation = next(r for r in trace.rows if r["name"] == "recommendation")
        if recommendation["input"] is None and "rule-lookup" in names:
            assert item.retrieved_content, "falls back to the rule-lookup span's items"
            assert item.query, "falls back to the root input's case"


def test_records_without_id_or_recommendation_are_invalid() -> None:
    rows = clean_trace().rows
    for bad_id in ("", None, "   "):
        broken = [{**r, "traceId": bad_id} for r in rows]
        with pytest.raises(InvalidRecordError, match="no id"):
            extract_recommendation(Trace.from_observations(broken))
    without_step = [r for r in rows if r["name"] != "recommendation"]
    with pytest.raises(InvalidRecordError, match="recommendation"):
        extract_recommendation(Trace.from_observations(without_step))
    with pytest.raises(InvalidRecordError, match="not a trace"):
        extract_recommendation(42)


def test_nulls_everywhere_do_not_crash() -> None:
    rows: list[dict[str, Any]] = [
        {"id": "root", "traceId": "t-null", "type": "SPAN", "name": None, "isRootObservation": True},
        {
            "id": "gen",
            "traceId": "t-null",
            "type": "GENERATION",
            "name": "recommendation",
            "parentObservationId": "root",
            "input": None,
            "output": None,
            "metadata": None,
            "startTime": None,
            "endTime": None,
            "latency": None,
            "tags": None,
        },
    ]
    item = extract_recommendation(Trace.from_observations(rows))
    assert item.id == "t-null" and item.observation_id == "gen"
    assert item.actual_output is None and item.retrieved_content is None and item.query is None
    assert item.additional_output["output_format"] == "empty"
    assert item.latency is None and item.metadata["tags"] == []


def test_megabyte_output_and_prompt() -> None:
    rows = clean_trace().rows
    huge = "x" * 1_000_000
    rows[-1] = {
        **rows[-1],
        "output": json.dumps({"decision": "approve", "rationale": huge + " [1]"}),
        "input": json.dumps([{"role": "user", "content": "CASE ASSESSMENT:\n" + huge + "\nCONTEXT DATA:\n[1] a"}]),
    }
    item = extract_recommendation(Trace.from_observations(rows))
    assert len(item.actual_output or "") > 1_000_000 and len(item.query or "") == 1_000_000
    assert item.retrieved_content == ["a"]
    rows[-1] = {**rows[-1], "output": '{"decision": "refer", "rationale": "' + huge}  # truncated, 1 MB
    item = extract_recommendation(Trace.from_observations(rows))
    assert item.additional_output["output_format"] == "malformed_json"
    assert item.additional_output["decision"] == "refer"


@pytest.mark.parametrize(
    ("output", "fmt", "decision", "text"),
    [
        ('{"decision": "Approve", "rationale": "ok [1]"}', "json", "approve", "ok [1]"),
        ({"role": "assistant", "content": '{"decision": "refer", "rationale": "r"}'}, "json", "refer", "r"),
        ("I recommend approval.", "text", None, "I recommend approval."),
        ('{"decision": "decline", "rationale": "trunc', "malformed_json", "decline", None),
        ('{"rationale": 5}', "json", None, '{"rationale": 5}'),
        ([1, 2], "other", None, "[1, 2]"),
        (3.5, "other", None, "3.5"),
        ("   ", "empty", None, "   "),
    ],
)
def test_parse_answer_shapes(output: Any, fmt: str, decision: str | None, text: str | None) -> None:
    answer = parse_answer(output)
    assert answer.output_format == fmt and answer.decision == decision
    if text is not None:
        assert answer.text == text


def test_the_observation_a_source_targeted_is_scored() -> None:
    rows = clean_trace().rows
    extra = {**rows[-1], "id": "second-rec", "output": '{"decision": "decline", "rationale": "no [1]"}'}
    trace = Trace.from_observations([*rows, extra], target_observation_id="second-rec")
    item = extract_recommendation(trace)
    assert item.observation_id == "second-rec" and item.additional_output["decision"] == "decline"


def test_with_prompt_patterns_on_the_trace_and_from_v3_shape() -> None:
    rows = clean_trace().rows
    plain = extract_recommendation(Trace.from_observations(rows))
    patterned = extract_recommendation(Trace.from_observations(rows, AthenaPromptPatterns()))
    assert patterned == plain
    v3 = {
        "id": rows[0]["traceId"],
        "sessionId": rows[0]["sessionId"],
        "input": json.loads(rows[0]["input"]),
        "observations": [{k: v for k, v in r.items() if k != "traceId"} for r in rows],
    }
    from_v3 = extract_recommendation(v3)
    assert from_v3.id == plain.id and from_v3.retrieved_content == plain.retrieved_content
    assert from_v3.actual_output == plain.actual_output


def test_bundled_sample_extracts_with_three_invalid_records() -> None:
    groups = group_rows(read_jsonl(SAMPLE))
    assert len(groups) == 300
    items, invalid = [], 0
    for rows in groups:
        try:
            items.append(extract_recommendation(Trace.from_observations(rows)))
        except InvalidRecordError:
            invalid += 1
    assert 2 <= invalid <= 3
    assert len({i.id for i in items}) == len(items)
    formats = {i.additional_output["output_format"] for i in items}
    assert {"json", "empty", "malformed_json"} <= formats


@pytest.mark.parametrize("key", ["refer_reason", "referral_reason"])
def test_refer_reason_is_read_under_either_key(key: str) -> None:
    """Writers that say `referral_reason` must not fail athena_refer_reason_given on every referral."""
    reason = "Flood zone A with no elevation certificate on file."
    rows = clean_trace().rows
    output = {"decision": "refer", "rationale": "Needs review [1].", key: reason}
    rows[-1] = {**rows[-1], "output": json.dumps(output)}
    item = extract_recommendation(Trace.from_observations(rows))
    assert item.additional_output["refer_reason"] == reason
    given = asyncio.run(ReferReasonGiven().execute(item))
    assert given.score == 1.0 and given.passed

    truncated = '{"decision": "refer", "' + key + '": "Flood zone A, no elevation cert'
    salvaged = parse_answer(truncated)
    assert salvaged.output_format == "malformed_json" and salvaged.refer_reason == "Flood zone A, no elevation cert"


def test_a_blank_refer_reason_falls_back_to_referral_reason() -> None:
    answer = parse_answer(
        {"decision": "refer", "rationale": "r", "refer_reason": " ", "referral_reason": "Prior claims"}
    )
    assert answer.refer_reason == "Prior claims"
