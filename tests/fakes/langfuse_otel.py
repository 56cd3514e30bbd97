"""OTLP spans -> Langfuse v4 observation rows, the way Langfuse ingests them.

Langfuse SDKs (Python >= 4, so the installed v5) export OTLP with `x-langfuse-ingestion-version: 4`,
which sends every span straight to the v4 events table (the OTel ingestion processor's
`processToEvent`, then `IngestionService.createEventRecord`). `GET /api/public/v2/observations` reads
that table. This module applies the same mapping, so the fake answers with the rows a real
Langfuse would hold for spans written by the real SDK instrumentation (LangChain callback handler,
`langfuse.openai`, `@observe`):

- type: `langfuse.observation.type` (span, generation, agent, tool, chain, retriever, evaluator,
  guardrail, embedding, event), else `openinference.span.kind`, else `gen_ai.operation.name`,
  else a `gen_ai.tool.name`/`gen_ai.tool.call.id` span is a TOOL, else a span naming a model is a
  GENERATION, else SPAN.
- input/output: `langfuse.observation.input/output` as the SDK wrote them (JSON text or plain
  text, stored as raw strings); for other instrumentations, in Langfuse's order: the
  `gen_ai.client.inference.operation.details` event, `mlflow.spanInputs/Outputs`,
  `traceloop.entity.input/output`, `input.value/output.value`, `input/output`,
  `tool_arguments/tool_response`, flattened `gen_ai.prompt.N.*`/`gen_ai.completion.N.*` and
  `llm.input_messages.N.*`/`llm.output_messages.N.*`, then `gen_ai.input.messages` /
  `gen_ai.output.messages` (with `gen_ai.system_instructions` prepended) and
  `gen_ai.tool.call.arguments/result`. Vendor-specific shapes (Vercel AI SDK, Genkit, Logfire,
  LiveKit, Vertex ADK, Flue, pydantic-ai) are not modelled.
- metadata: `{resourceAttributes, scope: {name, version, attributes}}` plus, for spans not written by
  a Langfuse SDK, `attributes` (what remains after the I/O keys are taken), then the
  `langfuse.observation.metadata[.*]`, `langfuse.metadata[.*]` and `langfuse.trace.metadata[.*]`
  keys; nested objects flattened to dotted paths, leaves stored as strings (non-strings as JSON),
  as the events table stores `metadata_names`/`metadata_values`. v5 SDKs JSON-encode every
  metadata value (`"web"` arrives as `"\\"web\\""`); the server keeps that text and decodes it
  when it reads (so do evalmon's readers).
- trace context on every row: `langfuse.trace.name` -> traceName, `user.id`/`langfuse.user.id`,
  `session.id`/`langfuse.session.id`/`gen_ai.conversation.id`, `langfuse.trace.tags`,
  `langfuse.release`, `langfuse.environment` (or `deployment.environment[.name]`, span before
  resource; `default` otherwise), `langfuse.version` or the resource's `service.version`.
- isRootObservation: no parent span, or `langfuse.internal.is_app_root` (the SDK's root marker).
- level: `langfuse.observation.level`, else ERROR for an error status, else DEFAULT; model name,
  parameters, usage and cost details, completion start and (GENERATION only) prompt name/version
  from their `langfuse.observation.*` keys, with the `gen_ai.*` fallbacks Langfuse reads.

Not modelled: masking, media upload, tool-definition normalisation, model price matching
(internalModelId, prices and costs stay empty unless the span carries cost details).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

LANGFUSE_TYPES = {
    "span": "SPAN",
    "generation": "GENERATION",
    "event": "EVENT",
    "embedding": "EMBEDDING",
    "agent": "AGENT",
    "tool": "TOOL",
    "chain": "CHAIN",
    "retriever": "RETRIEVER",
    "guardrail": "GUARDRAIL",
    "evaluator": "EVALUATOR",
}
OPENINFERENCE_TYPES = {
    "CHAIN": "CHAIN",
    "RETRIEVER": "RETRIEVER",
    "LLM": "GENERATION",
    "EMBEDDING": "EMBEDDING",
    "AGENT": "AGENT",
    "TOOL": "TOOL",
    "GUARDRAIL": "GUARDRAIL",
    "EVALUATOR": "EVALUATOR",
}
GENAI_OPERATION_TYPES = {
    "chat": "GENERATION",
    "completion": "GENERATION",
    "text_completion": "GENERATION",
    "generate_content": "GENERATION",
    "generate": "GENERATION",
    "embeddings": "EMBEDDING",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
    "execute_tool": "TOOL",
}
MODEL_KEYS = (
    "langfuse.observation.model.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "llm.model_name",
    "model",
)
MODEL_NAME_KEYS = (
    "langfuse.observation.model.name",
    "gen_ai.response.model",
    "ai.model.id",
    "gen_ai.request.model",
    "llm.response.model",
    "llm.model_name",
    "model",
)
LEVELS = {"DEBUG", "DEFAULT", "WARNING", "ERROR"}
# Keys Langfuse takes as I/O: left out of `metadata.attributes` for non-SDK spans.
IO_KEYS = {
    "langfuse.trace.input",
    "langfuse.trace.output",
    "langfuse.observation.input",
    "langfuse.observation.output",
    "mlflow.spanInputs",
    "mlflow.spanOutputs",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "input.value",
    "output.value",
    "input",
    "output",
    "gen_ai.system_instructions",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}
IO_PREFIXES = (
    "gen_ai.prompt",
    "gen_ai.completion",
    "llm.input_messages",
    "llm.output_messages",
    "langfuse.trace.metadata",
    "langfuse.observation.metadata",
    "ai.telemetry.metadata",
)


def any_value(value: Any) -> Any:
    """An OTLP AnyValue as a Python value (kvlists as dicts, arrays as lists)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def attributes_of(items: Sequence[Any]) -> dict[str, Any]:
    return {a.key: any_value(a.value) for a in items}


def observation_rows(message: Any, project_id: str) -> list[dict[str, Any]]:
    """Every span of an ExportTraceServiceRequest as a v2 observation row (input/output raw strings)."""
    rows = []
    for resource_spans in message.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = {
                "name": scope_spans.scope.name,
                "version": scope_spans.scope.version,
                "attributes": attributes_of(scope_spans.scope.attributes),
            }
            for span in scope_spans.spans:
                rows.append(observation_row(span, resource, scope, project_id))
    return rows


def observation_row(
    span: Any, resource: Mapping[str, Any], scope: Mapping[str, Any], project_id: str
) -> dict[str, Any]:
    """One span -> one v2 observation row (processToEvent + createEventRecord + the v2 read)."""
    attrs = attributes_of(span.attributes)
    events = [{"name": e.name, "attributes": attributes_of(e.attributes)} for e in span.events]
    is_sdk_span = str(scope.get("name") or "").startswith("langfuse-sdk")
    observation_type = observation_type_of(attrs, str(span.name))
    input_, output, filtered = input_and_output(attrs, events)
    metadata: dict[str, Any] = {
        **({} if is_sdk_span else {"attributes": filtered}),
        "resourceAttributes": dict(resource),
        "scope": dict(scope),
        **metadata_of(attrs, "langfuse.observation.metadata"),
        **metadata_of(attrs, "langfuse.trace.metadata"),
    }
    start = _iso_from_nanos(span.start_time_unix_nano)
    end = _iso_from_nanos(span.end_time_unix_nano) if span.end_time_unix_nano else start
    parent = span.parent_span_id.hex() or None
    is_generation = observation_type == "GENERATION"
    usage = _json_object(attrs.get("langfuse.observation.usage_details"))
    ingested_at = _iso(datetime.now(UTC))
    cost = _json_object(attrs.get("langfuse.observation.cost_details"))
    return {
        "id": span.span_id.hex(),
        "traceId": span.trace_id.hex(),
        "projectId": project_id,
        "parentObservationId": parent,
        "isRootObservation": parent is None or _truthy(attrs.get("langfuse.internal.is_app_root")),
        "type": observation_type,
        "name": _name_of(attrs, str(span.name)),
        "startTime": start,
        "endTime": end,
        "createdAt": ingested_at,
        "updatedAt": ingested_at,
        "completionStartTime": _completion_start(attrs.get("langfuse.observation.completion_start_time")),
        "level": _level_of(attrs, span.status.code),
        "statusMessage": attrs.get("langfuse.observation.status_message") or span.status.message or None,
        "version": attrs.get("langfuse.version") or resource.get("service.version"),
        "environment": environment_of(attrs, resource),
        "release": attrs.get("langfuse.release") or resource.get("langfuse.release"),
        "traceName": attrs.get("langfuse.trace.name"),
        "userId": _first_text(attrs, ("langfuse.user.id", "user.id", "langfuse.observation.metadata.langfuse_user_id")),
        "sessionId": _first_text(
            attrs,
            (
                "langfuse.session.id",
                "session.id",
                "gen_ai.conversation.id",
                "langfuse.observation.metadata.langfuse_session_id",
            ),
        ),
        "tags": tags_of(attrs),
        "public": _truthy(attrs.get("langfuse.trace.public", attrs.get("langfuse.public"))),
        "bookmarked": False,
        "input": _raw(input_),
        "output": _raw(output),
        "metadata": flatten_metadata(metadata),
        "providedModelName": _first_text(attrs, MODEL_NAME_KEYS),
        "internalModelId": None,
        "modelParameters": _model_parameters(attrs.get("langfuse.observation.model.parameters")),
        "usageDetails": usage_details(usage if usage is not None else _genai_usage(attrs)),
        "costDetails": {k: float(v) for k, v in (cost or {}).items() if _is_number(v)},
        "totalCost": float(cost["total"]) if cost and _is_number(cost.get("total")) else None,
        "usagePricingTierName": None,
        "promptId": None,
        "promptName": attrs.get("langfuse.observation.prompt.name") if is_generation else None,
        "promptVersion": _int_or_none(attrs.get("langfuse.observation.prompt.version")) if is_generation else None,
    }


def observation_type_of(attrs: Mapping[str, Any], span_name: str) -> str:
    """Langfuse's ObservationTypeMapper, in its priority order (the SDK-relevant mappers)."""
    for key, table in (
        ("langfuse.observation.type", LANGFUSE_TYPES),
        ("openinference.span.kind", OPENINFERENCE_TYPES),
        ("gen_ai.operation.name", GENAI_OPERATION_TYPES),
    ):
        mapped = table.get(str(attrs.get(key))) if _meaningful(attrs.get(key)) else None
        if mapped:
            return mapped
    if _meaningful(attrs.get("gen_ai.tool.name")) or _meaningful(attrs.get("gen_ai.tool.call.id")):
        return "TOOL"
    if any(_meaningful(attrs.get(k)) for k in MODEL_KEYS):
        return "GENERATION"
    return "SPAN"


def input_and_output(attrs: Mapping[str, Any], events: list[dict[str, Any]]) -> tuple[Any, Any, dict[str, str]]:
    """(input, output, attributes left for metadata), first source that has either, in Langfuse's order."""
    filtered = {
        k: v if isinstance(v, str) else json.dumps(v)
        for k, v in attrs.items()
        if k not in IO_KEYS and not k.startswith(IO_PREFIXES)
    }
    pairs: list[tuple[Any, Any]] = [
        (attrs.get("langfuse.observation.input"), attrs.get("langfuse.observation.output")),
    ]
    if pairs[0][0] is not None or pairs[0][1] is not None:
        return pairs[0][0], pairs[0][1], filtered
    for event in events:
        if event["name"] == "gen_ai.client.inference.operation.details":
            found = _genai_messages(event["attributes"])
            if found:
                return found[0], found[1], filtered
    for in_key, out_key in (
        ("mlflow.spanInputs", "mlflow.spanOutputs"),
        ("traceloop.entity.input", "traceloop.entity.output"),
        ("input.value", "output.value"),
        ("input", "output"),
        ("tool_arguments", "tool_response"),
    ):
        if attrs.get(in_key) or attrs.get(out_key):
            return attrs.get(in_key), attrs.get(out_key), filtered
    for in_prefix, out_prefix in (
        ("gen_ai.prompt", "gen_ai.completion"),
        ("llm.input_messages", "llm.output_messages"),
    ):
        ins = {k: v for k, v in attrs.items() if k.startswith(in_prefix)}
        outs = {k: v for k, v in attrs.items() if k.startswith(out_prefix)}
        if ins or outs:
            return _nested(ins, in_prefix), _nested(outs, out_prefix), filtered
    found = _genai_messages(attrs)
    if found:
        return found[0], found[1], filtered
    return None, None, filtered


def _genai_messages(attrs: Mapping[str, Any]) -> tuple[Any, Any] | None:
    input_, output = attrs.get("gen_ai.input.messages"), attrs.get("gen_ai.output.messages")
    if input_ and attrs.get("gen_ai.system_instructions"):
        input_ = _prepend_system(input_, attrs["gen_ai.system_instructions"])
    if input_ or output:
        return input_, output
    input_, output = attrs.get("gen_ai.tool.call.arguments"), attrs.get("gen_ai.tool.call.result")
    if input_ or output:
        return input_, output
    return None


def _prepend_system(messages: Any, instructions: Any) -> Any:
    parsed = _json_or(messages, None)
    if not isinstance(parsed, list) or any(isinstance(m, Mapping) and m.get("role") == "system" for m in parsed):
        return messages
    inner = _json_or(instructions, instructions)
    if isinstance(inner, list):
        content = "\n".join(
            str(p.get("content")) if isinstance(p, Mapping) and p.get("content") else str(p) for p in inner
        )
    else:
        content = str(inner)
    merged = [{"role": "system", "content": content}, *parsed]
    return json.dumps(merged) if isinstance(messages, str) else merged


def _nested(flat: Mapping[str, Any], prefix: str) -> Any:
    """`gen_ai.prompt.0.content` -> `[{"content": ...}]` (Langfuse's convertKeyPathToNestedObject)."""
    if flat.get(prefix):
        return flat[prefix]
    keys = [k[len(prefix) + 1 :] for k in flat if k.startswith(prefix + ".")]
    result: dict[str, Any] = {}
    for key in keys:
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = flat[f"{prefix}.{key}"]
    if keys and all(k.split(".")[0].isdigit() for k in keys):
        return [result.get(str(i)) for i in range(max(int(k) for k in result) + 1)]
    return result


def metadata_of(attrs: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """A metadata JSON object under `prefix` merged with the `prefix.KEY` attributes (values kept as sent)."""
    compat = "langfuse.metadata"
    top = _json_object(attrs.get(prefix) or attrs.get(compat)) or {}
    keyed = {
        key[len(p) + 1 :]: value
        for key, value in attrs.items()
        for p in (prefix, compat, "ai.telemetry.metadata")
        if key.startswith(p + ".") and len(key) > len(p) + 1
    }
    return {**top, **keyed}


def flatten_metadata(metadata: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested objects -> dotted paths; leaves as strings (non-strings as JSON), as the events table stores them."""
    flat: dict[str, str] = {}
    for key, value in metadata.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_metadata(value, path))
        elif value is None:
            flat[path] = ""
        else:
            flat[path] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return flat


def environment_of(attrs: Mapping[str, Any], resource: Mapping[str, Any]) -> str:
    for key in ("langfuse.environment", "deployment.environment.name", "deployment.environment"):
        for source in (attrs, resource):
            if source.get(key):
                return str(source[key]).lower()
    return "default"


def tags_of(attrs: Mapping[str, Any]) -> list[str]:
    value = next(
        (
            attrs[k]
            for k in (
                "langfuse.trace.tags",
                "langfuse.tags",
                "langfuse.observation.metadata.langfuse_tags",
                "langfuse.trace.metadata.langfuse_tags",
                "ai.telemetry.metadata.tags",
                "tag.tags",
            )
            if attrs.get(k)
        ),
        None,
    )
    if value is None:
        return []
    if isinstance(value, list):
        return [str(t) for t in value]
    text = str(value)
    if text.strip().startswith("["):
        parsed = _json_or(text, None)
        if isinstance(parsed, list):
            return [str(t) for t in parsed]
    return [t.strip() for t in text.split(",")] if "," in text else [text]


def _name_of(attrs: Mapping[str, Any], span_name: str) -> str:
    for key in ("gen_ai.tool.name", "logfire.msg"):
        if attrs.get(key):
            value = attrs[key]
            return value if isinstance(value, str) else json.dumps(value)
    return span_name


def _level_of(attrs: Mapping[str, Any], status_code: int) -> str:
    level = str(attrs.get("langfuse.observation.level") or "").upper()
    if level in LEVELS:
        return level
    return "ERROR" if status_code == 2 else "DEFAULT"


def _completion_start(value: Any) -> str | None:
    """The SDK sends the time JSON-encoded (`"\\"2026-...\\""`); older SDKs sent it plain."""
    for candidate in (value, _json_or(value, None)):
        if isinstance(candidate, str):
            try:
                parsed = datetime.fromisoformat(candidate.replace("Z", "+00:00"))
            except ValueError:
                continue
            return _iso(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    return None


def _model_parameters(value: Any) -> dict[str, Any] | None:
    params = _json_object(value)
    if params is None:
        return None
    return {
        k: v if isinstance(v, str | int | float) and not isinstance(v, bool) else json.dumps(v)
        for k, v in params.items()
    }


def usage_details(raw: Mapping[str, Any]) -> dict[str, int]:
    """Langfuse's UsageDetails: OpenAI Chat (`prompt_tokens`...) and Responses (`input_tokens`...) usage
    become input/output/total (cached or reasoning details split out); other keys keep their non-negative
    integer values."""
    for prefix_in, prefix_out in (("prompt", "completion"), ("input", "output")):
        keys = {f"{prefix_in}_tokens", f"{prefix_out}_tokens", "total_tokens"}
        details = {f"{prefix_in}_tokens_details", f"{prefix_out}_tokens_details"}
        if keys <= set(raw) and set(raw) <= keys | details and all(_is_count(raw[k]) for k in keys):
            usage = {
                "input": raw[f"{prefix_in}_tokens"],
                "output": raw[f"{prefix_out}_tokens"],
                "total": raw["total_tokens"],
            }
            for side, name in (("input", f"{prefix_in}_tokens_details"), ("output", f"{prefix_out}_tokens_details")):
                for key, value in (raw.get(name) or {}).items():
                    if _is_count(value):
                        usage[f"{side}_{key}"] = value
                        usage[side] = max(usage[side] - value, 0)
            return usage
    clean: dict[str, int] = {}
    for key, value in raw.items():
        if _is_count(value) or (isinstance(value, str) and value.strip().isdigit()):
            clean[key] = int(value)
    return clean


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _genai_usage(attrs: Mapping[str, Any]) -> dict[str, Any]:
    raw = {
        k.removeprefix("gen_ai.usage.").removeprefix("llm.token_count."): v
        for k, v in attrs.items()
        if (k.startswith("gen_ai.usage.") and k != "gen_ai.usage.cost") or k.startswith("llm.token_count.")
    }
    usage: dict[str, Any] = {}
    for name, keys in (
        ("input", ("prompt_tokens", "input_tokens", "prompt")),
        ("output", ("completion_tokens", "output_tokens", "completion")),
        ("total", ("total_tokens", "total")),
    ):
        value = next((raw[k] for k in keys if k in raw and _is_number(raw[k])), None)
        if value is not None:
            usage[name] = value
    return usage


def _raw(value: Any) -> str | None:
    """What the events table holds: strings as sent, anything else as JSON; None stays null."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _json_object(value: Any) -> dict[str, Any] | None:
    parsed = _json_or(value, None) if isinstance(value, str) else value
    return dict(parsed) if isinstance(parsed, Mapping) else None


def _json_or(value: Any, default: Any) -> Any:
    if not isinstance(value, str):
        return default
    try:
        return json.loads(value)
    except ValueError:
        return default


def _first_text(attrs: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        if attrs.get(key):
            value = attrs[key]
            return value if isinstance(value, str) else json.dumps(value)
    return None


def _meaningful(value: Any) -> bool:
    return value not in (None, "") and not (isinstance(value, list | dict) and not value)


def _truthy(value: Any) -> bool:
    return value is True or value == "true"


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _iso_from_nanos(nanos: int) -> str:
    return _iso(datetime.fromtimestamp(nanos / 1e9, UTC))


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
