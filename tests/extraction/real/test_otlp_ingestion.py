"""The fake's OTLP endpoint turns spans from any OpenTelemetry instrumentation into observations.

Langfuse SDK spans are covered live by test_capture_live.py; these are spans written with plain
OpenTelemetry and the GenAI / OpenInference conventions, exported by the real OTLP/HTTP exporter,
read back through `GET /api/public/v2/observations`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fakes.langfuse_server import FakeLangfuse
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from .capture import fetch_observations


def export(fake: FakeLangfuse, spans: tuple[ReadableSpan, ...], *, times: int = 1) -> None:
    token = base64.b64encode(f"{fake.public_key}:{fake.secret_key}".encode()).decode()
    exporter = OTLPSpanExporter(
        endpoint=f"{fake.url}/api/public/otel/v1/traces", headers={"Authorization": f"Basic {token}"}
    )
    for _ in range(times):
        assert exporter.export(spans).name == "SUCCESS"
    exporter.shutdown()


def record_spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "rag-api", "deployment.environment.name": "Staging"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def rows_by_name(fake: FakeLangfuse) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in fetch_observations(fake.url, fake.public_key, fake.secret_key)}


def test_genai_openinference_and_tool_spans_become_typed_observations(fake: FakeLangfuse) -> None:
    provider, memory = record_spans()
    tracer = provider.get_tracer("my-app", "1.0")
    with tracer.start_as_current_span("handle-request") as request:
        request.set_attribute("app.user_tier", "gold")
        with tracer.start_as_current_span("chat gpt-4o") as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Cite sources as [n]."}]),
                    "gen_ai.input.messages": json.dumps([{"role": "user", "content": "Where is tram 28?"}]),
                    "gen_ai.output.messages": json.dumps([{"role": "assistant", "content": "In Lisbon [1]."}]),
                    "gen_ai.usage.input_tokens": 42,
                    "gen_ai.usage.output_tokens": 7,
                }
            )
        with tracer.start_as_current_span("vector search") as search:
            search.set_attributes(
                {
                    "openinference.span.kind": "RETRIEVER",
                    "input.value": "tram 28",
                    "output.value": json.dumps({"documents": [{"content": "Tram 28 crosses Alfama."}]}),
                }
            )
        with tracer.start_as_current_span("execute_tool") as tool:
            tool.set_attributes(
                {
                    "gen_ai.tool.name": "weather",
                    "gen_ai.tool.call.arguments": '{"city": "Lisbon"}',
                    "gen_ai.tool.call.result": '{"temp_c": 21}',
                }
            )
        with tracer.start_as_current_span("validate") as failing:
            failing.set_status(Status(StatusCode.ERROR, "schema mismatch"))
    export(fake, tuple(memory.get_finished_spans()))
    rows = rows_by_name(fake)

    chat_row = rows["chat gpt-4o"]
    assert chat_row["type"] == "GENERATION" and chat_row["providedModelName"] == "gpt-4o"
    assert json.loads(chat_row["input"]) == [
        {"role": "system", "content": "Cite sources as [n]."},
        {"role": "user", "content": "Where is tram 28?"},
    ]
    assert json.loads(chat_row["output"]) == [{"role": "assistant", "content": "In Lisbon [1]."}]
    assert chat_row["usageDetails"] == {"input": 42, "output": 7}

    search_row = rows["vector search"]
    assert (search_row["type"], search_row["input"]) == ("RETRIEVER", "tram 28")
    assert json.loads(search_row["output"])["documents"][0]["content"] == "Tram 28 crosses Alfama."

    tool_row = rows["weather"]  # named after gen_ai.tool.name, as Langfuse does
    assert tool_row["type"] == "TOOL" and json.loads(tool_row["output"]) == {"temp_c": 21}

    root = rows["handle-request"]
    assert (root["type"], root["isRootObservation"], root["input"], root["output"]) == ("SPAN", True, None, None)
    assert root["environment"] == "staging"  # from the resource, lower-cased
    # non-SDK spans keep their other attributes under metadata.attributes, I/O keys taken out
    assert root["metadata"]["attributes.app.user_tier"] == "gold"
    assert not any(k.startswith("attributes.gen_ai.input") for k in chat_row["metadata"])
    assert chat_row["metadata"]["resourceAttributes.service.name"] == "rag-api"
    assert (chat_row["metadata"]["scope.name"], chat_row["metadata"]["scope.version"]) == ("my-app", "1.0")

    failing_row = rows["validate"]
    assert (failing_row["level"], failing_row["statusMessage"]) == ("ERROR", "schema mismatch")
    assert {r["parentObservationId"] for r in rows.values() if r is not root} == {root["id"]}


def test_a_re_exported_span_replaces_its_row(fake: FakeLangfuse) -> None:
    provider, memory = record_spans()
    with provider.get_tracer("my-app").start_as_current_span("answer") as span:
        span.set_attribute("langfuse.observation.output", "first")
    export(fake, tuple(memory.get_finished_spans()), times=2)
    rows = fetch_observations(fake.url, fake.public_key, fake.secret_key)
    assert [(r["name"], r["output"]) for r in rows] == [("answer", "first")]


def test_langfuse_attributes_win_and_v5_metadata_is_kept_as_sent(fake: FakeLangfuse) -> None:
    provider, memory = record_spans()
    with provider.get_tracer("my-app").start_as_current_span("step") as span:
        span.set_attributes(
            {
                "langfuse.observation.type": "evaluator",
                "langfuse.observation.input": '{"question": "q"}',
                "langfuse.observation.output": "ok",
                "input.value": "ignored: the Langfuse attribute wins",
                "langfuse.observation.metadata.channel": '"web"',
                "langfuse.observation.metadata.scores": "[1, 2]",
                "langfuse.trace.metadata.case": '"c-1"',
                "langfuse.trace.name": "my-trace",
                "langfuse.trace.tags": ["a", "b"],
                "user.id": "u-7",
                "session.id": "s-1",
                "langfuse.environment": "prod-eu",
                "langfuse.observation.level": "WARNING",
            }
        )
    export(fake, tuple(memory.get_finished_spans()))
    (row,) = fetch_observations(fake.url, fake.public_key, fake.secret_key)
    assert (row["type"], row["input"], row["output"], row["level"]) == (
        "EVALUATOR",
        '{"question": "q"}',
        "ok",
        "WARNING",
    )
    assert (row["traceName"], row["tags"], row["userId"], row["sessionId"]) == ("my-trace", ["a", "b"], "u-7", "s-1")
    assert row["environment"] == "prod-eu"
    # values stay JSON-encoded as the v5 SDK sends them; readers decode them
    assert (row["metadata"]["channel"], row["metadata"]["scores"], row["metadata"]["case"]) == (
        '"web"',
        "[1, 2]",
        '"c-1"',
    )
