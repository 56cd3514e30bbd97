"""Trace shapes for the inspect/init/guard tests, as Langfuse v2 observation rows.

`rag_traces`: a RAG app whose root span reports `{"status": "completed", "steps": 4}` while the
answer lives on a child GENERATION and the documents come from a RETRIEVER returning LangChain
Documents (`{"page_content", "metadata"}`): the shape where reading the root output goes wrong.

`chat_traces`: a plain chat app whose root observation carries the question and the answer.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BASE_TIME = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
TOPICS = ("flood cover", "roof age", "fire alarms", "tenant mix", "vacancy", "sprinklers", "crime score")


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ids(rng: random.Random, n: int) -> list[str]:
    return [uuid.UUID(int=rng.getrandbits(128)).hex[:16] for _ in range(n)]


def rag_traces(
    n: int, *, seed: int = 1, start: datetime = BASE_TIME, trace_name: str = "rag-answer", span_s: float = 3000.0
) -> list[dict[str, Any]]:
    """RAG traces: root SPAN (status output) > RETRIEVER `retrieve` > GENERATION `llm` (the answer)."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        t0 = start + timedelta(seconds=span_s * i / max(n, 1))
        trace_id = uuid.UUID(int=rng.getrandbits(128)).hex
        root_id, retr_id, gen_id = _ids(rng, 3)
        topic = TOPICS[i % len(TOPICS)]
        question = f"What does the guideline say about {topic} for case {i}?"
        docs = [
            {"page_content": f"Guideline {k}: {topic} rule number {i * 3 + k}.", "metadata": {"source": f"g{k}.md"}}
            for k in range(1, 4 + i % 2)
        ]
        answer = f"For case {i}, the {topic} rule {i * 3 + 1} applies [1], and rule {i * 3 + 2} as well [2]."
        common = {"traceId": trace_id, "traceName": trace_name, "environment": "production", "tags": ["rag"]}
        rows.append(
            {
                **common,
                "id": root_id,
                "type": "SPAN",
                "name": "rag-pipeline",
                "parentObservationId": None,
                "startTime": iso(t0),
                "endTime": iso(t0 + timedelta(seconds=2 + (i % 7) * 0.3)),
                "input": {"question": question},
                "output": {"status": "completed", "steps": 4},
            }
        )
        rows.append(
            {
                **common,
                "id": retr_id,
                "type": "RETRIEVER",
                "name": "retrieve",
                "parentObservationId": root_id,
                "startTime": iso(t0 + timedelta(milliseconds=50)),
                "endTime": iso(t0 + timedelta(milliseconds=300)),
                "input": {"query": question},
                "output": docs,
            }
        )
        rows.append(
            {
                **common,
                "id": gen_id,
                "type": "GENERATION",
                "name": "llm",
                "parentObservationId": root_id,
                "startTime": iso(t0 + timedelta(milliseconds=400)),
                "endTime": iso(t0 + timedelta(seconds=1.8)),
                "input": [
                    {"role": "system", "content": "Answer from the context; cite [n]."},
                    {"role": "user", "content": question},
                ],
                "output": answer,
            }
        )
    return rows


def chat_traces(
    n: int, *, seed: int = 2, start: datetime = BASE_TIME, trace_name: str = "chat"
) -> list[dict[str, Any]]:
    """Single-span chat traces: the root observation carries `{"query"}` in and `{"answer"}` out."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        t0 = start + timedelta(seconds=30 * i)
        (root_id,) = _ids(rng, 1)
        rows.append(
            {
                "traceId": uuid.UUID(int=rng.getrandbits(128)).hex,
                "traceName": trace_name,
                "id": root_id,
                "type": "GENERATION",
                "name": "chat",
                "parentObservationId": None,
                "startTime": iso(t0),
                "endTime": iso(t0 + timedelta(seconds=1 + i % 3)),
                "input": {"query": f"How do I reset password number {i}?"},
                "output": {"answer": f"Open settings, choose security, then reset password {i}."},
            }
        )
    return rows


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Rows as the API returns them: input/output as raw JSON strings."""
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            stored = dict(row)
            for key in ("input", "output"):
                if stored.get(key) is not None and not isinstance(stored[key], str):
                    stored[key] = json.dumps(stored[key])
            handle.write(json.dumps(stored) + "\n")
    return path
