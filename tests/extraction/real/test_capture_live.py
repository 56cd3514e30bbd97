"""Real instrumentation, live: the Langfuse SDK's own exporters into the fake's OTLP endpoint.

One app shape per framework variant is run by capture.py in a child process (the SDK keeps
process-wide state, and `langfuse.openai` patches openai for the whole process), traced to the fake
Langfuse and answered by the fake OpenAI server. The observations the fake then serves must carry
the types and input/output shapes these instrumentations write, and match the committed fixtures'
trace structure (so a package upgrade that changes the shapes shows up here first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.langfuse_server import FakeLangfuse
from fakes.openai_server import FakeOpenAI, OpenAIServer

from .capture import TRACE_NAMES, case_of_trace, fetch_observations, responder
from .cases import CASES_BY_ID, Case

HERE = Path(__file__).resolve().parent
CAPTURE = HERE / "capture.py"
LIVE_CASES = ("lc-01", "lc-05", "lg-03", "ag-01", "ag-04", "oa-01", "oa-04")  # one per app variant


@pytest.fixture(scope="module")
def captured() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """case id -> the observation rows the fake serves for that case's trace (oldest first)."""
    with FakeLangfuse() as fake, OpenAIServer(FakeOpenAI(responder=responder, latency_s=0.005)) as llm:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "OPENAI_", "OTEL_"))}
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                str(CAPTURE),
                "--emit",
                f"--langfuse-url={fake.url}",
                f"--public-key={fake.public_key}",
                f"--secret-key={fake.secret_key}",
                f"--openai-base-url={llm.base_url}",
                f"--openai-api-key={llm.state.api_key}",
                f"--cases={','.join(LIVE_CASES)}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert time.monotonic() - started < 60
        assert fake.requests["POST /api/public/otel/v1/traces"] >= 1
        rows = fetch_observations(fake.url, fake.public_key, fake.secret_key)
    by_case: dict[str, list[dict[str, Any]]] = {}
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["startTime"], r["id"])):
        by_trace.setdefault(row["traceId"], []).append(row)
    for trace_rows in by_trace.values():
        by_case[str(case_of_trace(trace_rows))] = trace_rows
    yield by_case


def parsed(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value


def root(rows: list[dict[str, Any]]) -> dict[str, Any]:
    roots = [r for r in rows if r["isRootObservation"]]
    assert len(roots) == 1, [r["name"] for r in roots]
    return roots[0]


def only(rows: list[dict[str, Any]], type_: str, name: str | None = None) -> dict[str, Any]:
    found = [r for r in rows if r["type"] == type_ and (name is None or r["name"] == name)]
    assert len(found) == 1, f"{len(found)} {type_} {name or ''} in {[(r['type'], r['name']) for r in rows]}"
    return found[0]


def of_type(rows: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["type"] == type_]


def assert_chat_generation(generation: dict[str, Any], case: Case) -> None:
    """An LLM call as the SDK records it: chat messages in, the assistant message out, model and usage."""
    messages = parsed(generation["input"])
    assert [m["role"] for m in messages][:2] == ["system", "user"]
    assert parsed(generation["output"])["role"] == "assistant"
    assert generation["providedModelName"] == "gpt-4o-mini"
    assert set(generation["usageDetails"]) >= {"input", "output"}
    assert all(isinstance(v, int) for v in generation["usageDetails"].values())


def test_every_case_becomes_one_trace_with_the_trace_context_the_app_set(
    captured: dict[str, list[dict[str, Any]]],
) -> None:
    assert sorted(captured) == sorted(LIVE_CASES)
    for case_id, rows in captured.items():
        framework = CASES_BY_ID[case_id].framework
        assert {r["traceName"] for r in rows} == {TRACE_NAMES[framework]}
        assert all(r["tags"] == ["evalmon-capture", framework] for r in rows)
        assert {r["environment"] for r in rows} == {"production"}
        assert {r["release"] for r in rows} == {"capture-1"}
        assert all(r["metadata"]["scope.name"] == "langfuse-sdk" for r in rows)
        assert not any("attributes" in key.split(".")[0] for r in rows for key in r["metadata"])  # SDK spans


def test_langchain_chain_records_documents_on_a_retriever_and_the_answer_on_the_root(
    captured: dict[str, list[dict[str, Any]]],
) -> None:
    case = CASES_BY_ID["lc-01"]
    rows = captured[case.id]
    top = root(rows)
    assert (top["type"], top["name"]) == ("CHAIN", "rag-chain")
    assert top["input"] == case.question  # a plain string input is stored as the text itself
    assert top["output"] == case.answer
    retriever = only(rows, "RETRIEVER")
    docs = parsed(retriever["output"])
    assert [d["page_content"] for d in docs] == [d.text for d in case.docs]
    assert {d["type"] for d in docs} == {"Document"}
    assert retriever["input"] == case.question
    generation = only(rows, "GENERATION", "ChatOpenAI")
    assert_chat_generation(generation, case)
    assert "Context:\n[1] " in parsed(generation["input"])[1]["content"]
    assert parsed(generation["output"])["content"] == case.answer
    assert {r["type"] for r in rows} == {"CHAIN", "RETRIEVER", "GENERATION"}


def test_langchain_with_sources_returns_a_dict_holding_documents_and_answer(
    captured: dict[str, list[dict[str, Any]]],
) -> None:
    case = CASES_BY_ID["lc-05"]
    output = parsed(root(captured[case.id])["output"])
    assert set(output) == {"context", "question", "answer"}
    assert output["answer"] == case.answer
    assert [d["page_content"] for d in output["context"]] == [d.text for d in case.docs]


def test_langgraph_agent_records_a_tool_with_a_retriever_inside_and_messages_on_the_root(
    captured: dict[str, list[dict[str, Any]]],
) -> None:
    case = CASES_BY_ID["lg-03"]  # the empty answer
    rows = captured[case.id]
    top = root(rows)
    assert (top["type"], top["name"]) == ("CHAIN", "LangGraph")
    assert parsed(top["input"])["messages"][0]["type"] == "human"
    assert parsed(top["input"])["messages"][0]["content"] == case.question
    messages = parsed(top["output"])["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "tool", "ai"]
    assert messages[1]["tool_calls"][0]["name"] == "search_docs"
    assert messages[-1]["content"] == case.answer
    tool = only(rows, "TOOL", "search_docs")
    assert parsed(tool["input"]) == {"query": case.plan["query"]}
    tool_output = parsed(tool["output"])
    assert tool_output["type"] == "tool"
    assert tool_output["content"].startswith(f"[1] {case.docs[0].title}: {case.docs[0].text}")
    retriever = only(rows, "RETRIEVER")
    assert retriever["parentObservationId"] == tool["id"]
    generations = of_type(rows, "GENERATION")
    assert len(generations) == 2
    for generation in generations:
        assert_chat_generation(generation, case)
    assert parsed(generations[-1]["output"])["content"] == ""
    assert {r["name"] for r in of_type(rows, "AGENT")} == {"agent"}  # the handler types the graph's agent node


def test_observe_agent_with_a_search_tool(captured: dict[str, list[dict[str, Any]]]) -> None:
    case = CASES_BY_ID["ag-01"]
    rows = captured[case.id]
    top = root(rows)
    assert (top["type"], top["name"]) == ("AGENT", "support-agent")
    assert parsed(top["input"]) == {"args": [], "kwargs": {"question": case.question}}  # how @observe records a call
    assert parsed(top["output"]) == {"output": case.answer, "steps": 3}
    search = only(rows, "TOOL", "web_search")
    results = parsed(search["output"])["results"]
    assert [(r["rank"], r["snippet"]) for r in results] == [(i, d.text) for i, d in enumerate(case.docs, start=1)]
    assert set(results[0]) == {"title", "snippet", "url", "rank"}
    plan, answer = (only(rows, "GENERATION", name) for name in ("plan", "compose_answer"))
    assert parsed(plan["output"]) == case.plan
    assert answer["output"] == case.answer  # a returned string is stored as the text itself
    assert answer["endTime"] > plan["endTime"]
    assert answer["providedModelName"] == "gpt-4o-mini" and set(answer["usageDetails"]) == {"input", "output"}
    assert parsed(answer["input"])["args"][0][1]["content"].startswith(f"Question: {case.question}")


def test_observe_agent_with_a_retriever_and_an_unrelated_tool(captured: dict[str, list[dict[str, Any]]]) -> None:
    case = CASES_BY_ID["ag-04"]
    rows = captured[case.id]
    assert parsed(root(rows)["input"]) == {"args": [case.question], "kwargs": {}}
    items = parsed(only(rows, "RETRIEVER", "kb_search")["output"])["items"]
    assert [i["text"] for i in items] == [d.text for d in case.docs]
    assert all(i["id"].startswith("kb-") for i in items)
    assert parsed(only(rows, "TOOL", "get_order_status")["output"])["status"] == "shipped"


def test_openai_drop_in_alone_is_a_single_root_generation(captured: dict[str, list[dict[str, Any]]]) -> None:
    case = CASES_BY_ID["oa-01"]
    rows = captured[case.id]
    assert len(rows) == 1
    generation = root(rows)
    assert (generation["type"], generation["name"]) == ("GENERATION", "answer-with-context")
    assert_chat_generation(generation, case)
    prompt = parsed(generation["input"])[1]["content"]
    assert prompt.startswith("Context:\n[1] ") and prompt.endswith(f"Question: {case.question}")
    assert parsed(generation["output"]) == {"role": "assistant", "content": case.answer}
    assert generation["modelParameters"]["temperature"] == 0
    # OpenAI's usage keys are stored the way Langfuse normalises them
    assert set(generation["usageDetails"]) == {"input", "output", "total"}


def test_openai_drop_in_inside_an_observe_span_that_returns_nothing(
    captured: dict[str, list[dict[str, Any]]],
) -> None:
    case = CASES_BY_ID["oa-04"]
    rows = captured[case.id]
    top = root(rows)
    assert (top["type"], top["name"], top["output"]) == ("SPAN", "handle-question", None)
    generation = only(rows, "GENERATION", "answer-with-context")
    assert generation["parentObservationId"] == top["id"]
    assert parsed(generation["output"])["content"] == case.answer  # whitespace only


def structure(rows: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """(type, name, parent's type) of every observation: what a trace looks like, ids and times aside."""
    by_id = {r["id"]: r for r in rows}
    return sorted(
        (
            r["type"],
            r["name"],
            by_id[r["parentObservationId"]]["type"] if r["parentObservationId"] in by_id else None,
        )
        for r in rows
    )


def test_live_traces_have_the_structure_of_the_committed_fixtures(captured: dict[str, list[dict[str, Any]]]) -> None:
    expected = json.loads((HERE / "expected.json").read_text(encoding="utf-8"))
    for case_id, rows in captured.items():
        entry = expected[case_id]
        fixture = [
            json.loads(line)
            for line in (HERE / f"{entry['framework']}.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        fixture_rows = [r for r in fixture if r["traceId"] == entry["trace_id"]]
        assert structure(rows) == structure(fixture_rows), case_id
