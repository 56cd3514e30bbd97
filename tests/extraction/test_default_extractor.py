"""`extractor: default` on the trace shapes real frameworks write: the answer, the question and the
retrieved documents a person would read in each trace, from v3 trace files and v4 observation rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.monitoring.extractors import (
    ExtractorNeeds,
    FieldPathExtractor,
    extract_with_origins,
    needs_of,
    resolve_extractor,
)
from shared.traces import Trace
from tests.extraction.helpers import DEFAULT, field_errors, items_from_file
from tests.extraction.shapes import SHAPES, generate, write_rows, write_v3

N_PER_SHAPE = 150


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("file_format", ["v3", "rows"])
def test_default_extractor_reads_every_shape_as_a_person_would(tmp_path: Path, shape: str, file_format: str) -> None:
    cases = generate(shape, N_PER_SHAPE, seed=11)
    writer = write_v3 if file_format == "v3" else write_rows
    items = items_from_file(writer(cases, tmp_path / f"{shape}.jsonl"))

    assert len(items) == len(cases)
    wrong = {case.id: errors for case in cases if (errors := field_errors(case, items[case.id]))}
    assert not wrong, f"{len(wrong)} of {len(cases)} {shape} traces misread, e.g. {next(iter(wrong.values()))}"
    # the generator covers what matters: empty answers, leaks, dangling citations
    assert {c.truth.kind for c in cases} >= {"empty", "pii", "clean"}


def _trace(root_output: Any, *children: dict[str, Any], root_type: str = "SPAN", root_input: Any = "hi") -> Trace:
    root = {
        "id": "root",
        "traceId": "t1",
        "type": root_type,
        "name": "app",
        "startTime": "2026-11-22T10:00:00Z",
        "endTime": "2026-11-22T10:00:05Z",
        "input": root_input,
        "output": root_output,
    }
    rows = [root]
    for number, child in enumerate(children, start=1):
        rows.append(
            {
                "id": f"c{number}",
                "traceId": "t1",
                "parentObservationId": "root",
                "startTime": f"2026-11-22T10:00:0{number}Z",
                "endTime": f"2026-11-22T10:00:0{number}.5Z",
                **child,
            }
        )
    return Trace.from_observations(rows)


def generation(output: Any, name: str = "llm", **more: Any) -> dict[str, Any]:
    return {"type": "GENERATION", "name": name, "output": output, **more}


@pytest.mark.parametrize(
    ("root_output", "expected"),
    [
        ("The answer.", "The answer."),
        ({"role": "assistant", "content": "From a message."}, "From a message."),
        ({"answer": "Keyed.", "sources": []}, "Keyed."),
        ({"output": None, "intermediate_steps": []}, None),  # the agent gave up: empty, not JSON text
        ({"output": "   "}, None),
        ("  \n ", None),
        (
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "LangGraph."}]},
            "LangGraph.",
        ),
        ({"choices": [{"message": {"role": "assistant", "content": "OpenAI response."}}]}, "OpenAI response."),
        ({"status": "completed", "steps": 4}, "From the generation."),  # status object: the GENERATION answers
        ({"status": "ok", "result": None}, "From the generation."),
        ('{"status": "completed"}', "From the generation."),  # JSON text of a status object
        (None, "From the generation."),
    ],
)
def test_answer_comes_from_the_root_when_it_carries_text_else_the_last_generation(
    root_output: Any, expected: str | None
) -> None:
    trace = _trace(root_output, generation("Draft."), generation("From the generation.", name="final"))
    assert DEFAULT(trace).actual_output == expected


def test_generations_inside_guardrails_and_evaluators_are_not_the_answer() -> None:
    trace = _trace(
        {"status": "done"},
        generation("The real answer."),
        {"id": "g", "type": "GUARDRAIL", "name": "moderation", "output": "pass"},
    )
    rows = [o.raw for o in trace.observations]
    rows.append(
        {
            "id": "judge-llm",
            "traceId": "t1",
            "parentObservationId": "g",
            "type": "GENERATION",
            "name": "moderation-llm",
            "startTime": "2026-11-22T10:00:04Z",
            "endTime": "2026-11-22T10:00:04.9Z",
            "output": "SAFE",
        }
    )
    assert DEFAULT(Trace.from_observations(rows)).actual_output == "The real answer."


def test_query_falls_back_to_the_first_generations_last_user_message() -> None:
    trace = _trace(
        None,
        generation(
            "ok",
            input=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "first turn"},
                {"role": "assistant", "content": "..."},
                {"role": "user", "content": "What is a heat pump?"},
            ],
        ),
        root_input=None,
    )
    assert DEFAULT(trace).query == "What is a heat pump?"


@pytest.mark.parametrize(
    ("output", "docs", "numbers"),
    [
        (["a", "b"], ["a", "b"], None),
        ([{"page_content": "a", "metadata": {}}, {"page_content": "b", "metadata": {}}], ["a", "b"], None),
        ({"documents": [{"content": "a"}, {"content": "b"}]}, ["a", "b"], None),
        ({"items": [{"id": "kb-1", "text": "a"}, {"id": "kb-2", "text": "b"}]}, ["a", "b"], None),
        ({"results": [{"snippet": "b", "rank": 2}, {"snippet": "a", "rank": 1}]}, ["a", "b"], None),
        ({"hits": [{"chunk": "a", "rank": 1}, {"chunk": "c", "rank": 3}]}, ["a", "c"], [1, 3]),
        ({"matches": [{"text": "a", "index": 0}, {"text": "b", "index": 1}]}, ["a", "b"], None),
        ({"nodes": [{"node": {"text": "a", "id_": "x"}, "score": 0.9}, {"node": {"text": "b"}}]}, ["a", "b"], None),
        ('{"chunks": [{"chunk": "a"}, {"chunk": "b"}]}', ["a", "b"], None),
        ({"context": "[1] a\n[2] b"}, ["a", "b"], None),
        ({"documents": [{"content": "a", "id": 4821}, {"content": "b", "id": 77}]}, ["a", "b"], None),  # db ids
    ],
)
def test_retriever_outputs_unpack_into_numbered_documents(output: Any, docs: list[str], numbers: Any) -> None:
    item = DEFAULT(_trace("answer [1]", {"type": "RETRIEVER", "name": "r", "output": output}))
    assert item.retrieved_content == docs
    assert item.additional_input.get("retrieved_numbers") == numbers


def test_named_retrieval_spans_count_only_when_no_retriever_and_never_twice() -> None:
    wrapper = {"id": "w", "type": "SPAN", "name": "retrieve-context", "output": {"documents": ["a", "b"]}}
    inner = {
        "id": "i",
        "type": "TOOL",
        "name": "vector_search",
        "output": ["a", "b"],
        "parentObservationId": "w",
        "startTime": "2026-11-22T10:00:01.1Z",
    }
    other = {"type": "TOOL", "name": "calculator", "output": "42"}
    rows = [o.raw for o in _trace("answer", wrapper, other).observations]
    rows.append({"traceId": "t1", **inner})
    assert DEFAULT(Trace.from_observations(rows)).retrieved_content == ["a", "b"]
    with_retriever = _trace("answer", wrapper, {"type": "RETRIEVER", "name": "r", "output": ["x"]})
    assert DEFAULT(with_retriever).retrieved_content == ["x"]


def test_context_numbered_in_the_answering_prompt_keeps_its_numbers() -> None:
    prompt = "Context:\n[2] second\n[5] fifth\ncontinued\n\nQuestion: why?"
    trace = _trace(None, generation("See [5].", input=[{"role": "user", "content": prompt}]), root_input=None)
    item = DEFAULT(trace)
    assert item.retrieved_content == ["second", "fifth\ncontinued"]
    assert item.additional_input["retrieved_numbers"] == [2, 5]
    assert item.query == "why?"


def test_origins_say_where_each_field_came_from() -> None:
    trace = _trace(
        {"status": "completed"},
        {"type": "SPAN", "name": "search", "output": {"results": [{"snippet": "a"}]}},
        generation("The answer [1].", name="llm-answer"),
        root_input={"question": "Why?"},
    )
    item, origins = extract_with_origins(DEFAULT, trace)
    assert item.actual_output == "The answer [1]."
    assert origins == {
        "actual_output": "GENERATION 'llm-answer' (obs c2).output (last GENERATION)",
        "query": "root SPAN 'app' (obs root).input.question",
        "retrieved_content": "SPAN 'search' (obs c1).output",
    }
    prompt_only = _trace(None, generation("x", name="chat", input="[1] a\n[2] b"), root_input="q")
    assert extract_with_origins(DEFAULT, prompt_only)[1]["retrieved_content"] == (
        "prompt of GENERATION 'chat' (obs c1) [numbered context]"
    )


def test_origins_of_configured_paths_and_custom_extractors() -> None:
    trace = _trace("answer", generation("x", name="recommendation"))
    configured = FieldPathExtractor({"actual_output": "recommendation.output"})
    assert extract_with_origins(configured, trace)[1]["actual_output"] == "recommendation.output"
    assert extract_with_origins(lambda record: DEFAULT(record), trace)[1] == {}


def test_needs_declare_which_observations_an_extractor_reads() -> None:
    default_needs = needs_of(DEFAULT)
    assert default_needs is not None and default_needs.all_children  # the rules may read any observation
    assert default_needs.field_groups is not None and "io" in default_needs.field_groups
    assert "usage" not in default_needs.field_groups
    root_only = FieldPathExtractor({"query": "input", "actual_output": "output", "retrieved_content": "metadata.docs"})
    assert root_only.needs.root_only
    named = FieldPathExtractor(
        {"query": "input", "actual_output": "recommendation.output", "retrieved_content": "type:RETRIEVER.output"}
    )
    assert named.needs == ExtractorNeeds(False, frozenset({"recommendation"}), frozenset({"RETRIEVER"}))
    with_path = FieldPathExtractor({}, field_paths=["llm.providedModelName"])
    assert with_path.needs.all_children and with_path.needs.field_groups is None  # a path may read any field
    assert needs_of(lambda record: record) is None  # declares nothing: gets everything
    assert isinstance(resolve_extractor("default", {}, None), FieldPathExtractor)


def test_a_v3_trace_without_observations_uses_its_own_input_and_output() -> None:
    trace = Trace.from_v3({"id": "t9", "input": {"question": "Why?"}, "output": {"answer": "Because [1]."}})
    item = DEFAULT(trace)
    assert (item.query, item.actual_output, item.retrieved_content) == ("Why?", "Because [1].", None)


def test_an_observation_level_read_answers_from_its_target() -> None:
    rows = [
        o.raw for o in _trace({"status": "ok"}, generation("First.", name="draft"), generation("Second.")).observations
    ]
    trace = Trace.from_observations(rows, target_observation_id="c1")
    item, origins = extract_with_origins(DEFAULT, trace)
    assert (item.actual_output, item.observation_id) == ("First.", "c1")
    assert origins["actual_output"] == "GENERATION 'draft' (obs c1).output"
