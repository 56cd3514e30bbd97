"""Traces in the shapes real frameworks write, each with the ground truth a person reading it would give.

Shapes (each `generate(shape, n, seed)` call gives `n` varied traces):

    plain_rag       root SPAN output `{"status": "completed", "steps": 4}`; a retrieval SPAN (several
                    names and output shapes); the answer on a child GENERATION; a guardrail LLM call
                    after it; the v3 trace-level output holds the answer (as `update_trace` writes it)
    langchain_rag   LangChain callback shape: root chain `{"answer", "context"}`, a RETRIEVER returning
                    Documents (`page_content` + `metadata`), a ChatOpenAI GENERATION
    tool_agent      root AGENT `{"output": answer, ...}` (`{"output": null}` when it gave up), a tool-call
                    GENERATION, a TOOL `web_search` -> `{"results": [{title, snippet, url, rank}]}`,
                    sometimes a calculator TOOL, the final GENERATION
    single_call     one root GENERATION (langfuse.openai drop-in): `Context:\\n[1] ...\\n\\nQuestion: ...`
                    in the prompt, null trace input/output
    items_retriever a retriever returning `{"items": [{id, text, score}]}`, root `{"answer": ...}`
    llamaindex      a RETRIEVER returning LlamaIndex nodes (`{"node": {"text": ...}, "score"}`),
                    root `{"response": ..., "source_nodes": [...]}`
    athena          the bundled athena generator (implementations.athena.generate_traces)

Each answer is clean, cites a document that was not retrieved, cites nothing, leaks PII (an
e-mail address or an SSN), or is empty in the shape's own way. `Truth` holds the fields the default
extractor must find and the verdicts a person would give.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BASE_TIME = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
SHAPES = ("plain_rag", "langchain_rag", "tool_agent", "single_call", "items_retriever", "llamaindex", "athena")
KINDS = ("clean", "dangling", "no_citations", "pii", "empty")
KIND_WEIGHTS = (0.55, 0.12, 0.1, 0.12, 0.11)

TOPICS = (
    ("heat pumps", ("work down to minus twenty degrees", "need a yearly filter change", "cut heating bills")),
    ("sourdough", ("needs a mature starter", "proofs best overnight in the fridge", "bakes at high heat")),
    ("tide pools", ("are best visited at low tide", "host anemones and crabs", "are fragile habitats")),
    ("bike chains", ("wear out after a few thousand miles", "need light oil", "stretch with use")),
    ("compost", ("needs greens and browns", "should stay as damp as a sponge", "heats up when active")),
    ("solar panels", ("lose output in shade", "last about twenty five years", "need little cleaning")),
    ("houseplants", ("mostly die from overwatering", "like bright indirect light", "grow slower in winter")),
    ("espresso", ("uses finely ground coffee", "extracts in under thirty seconds", "needs fresh beans")),
)
PII_SENTENCES = (
    "Contact the owner at {name}.{last}@example.org for details.",
    "The customer SSN on file is {ssn}.",
    "Reach the account holder via {name}{d}@mailbox.net today.",
)
NAMES = ("maria", "john", "wei", "fatima", "liam", "aiko")
LASTS = ("garcia", "smith", "chen", "khan", "murphy", "tanaka")


@dataclass
class Truth:
    """What a person reading the trace would say."""

    query: str
    answer: str | None  # None: the app answered nothing
    docs: list[str]  # the retrieved documents' texts, in citation-number order
    numbers: list[int] | None = None  # the documents' numbers when not simply 1..n
    pii: bool = False
    citations_valid: bool = True  # vacuously true when nothing is cited
    kind: str = "clean"
    docs_contain: bool = False  # athena: each expected text is inside the extracted document

    @property
    def empty(self) -> bool:
        return self.answer is None


@dataclass
class Case:
    shape: str
    trace: dict[str, Any]  # the v3 shape: trace fields plus `observations`
    truth: Truth
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.trace["id"])


# -- shared pieces -------------------------------------------------------------------------
class _Draw:
    """One trace's random draws and clock."""

    def __init__(self, rng: random.Random, index: int, shape: str) -> None:
        self.rng = rng
        self.index = index
        self.shape = shape
        self.start = BASE_TIME - timedelta(minutes=5 * index + 1, milliseconds=rng.randint(0, 999))
        self.kind = rng.choices(KINDS, weights=KIND_WEIGHTS)[0]
        self.topic, self.facts = rng.choice(TOPICS)
        self.trace_id = uuid.UUID(int=rng.getrandbits(128)).hex
        self.environment = rng.choice(("production", "production", "staging"))
        self.user_id = f"user-{rng.randint(1, 9)}"
        self.tags = [shape, rng.choice(("web", "mobile"))]

    def oid(self) -> str:
        return uuid.UUID(int=self.rng.getrandbits(128)).hex[:16]

    def at(self, ms: int) -> str:
        return (self.start + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")

    def question(self) -> str:
        return f"What should I know about {self.topic}? (case {self.index})"

    def docs(self, k: int | None = None) -> list[str]:
        k = k or self.rng.randint(3, 5)
        return [f"{self.topic.capitalize()} note {chr(65 + j)}: {self.topic} {self.facts[j % 3]}." for j in range(k)]

    def answer(self, numbers: list[int]) -> tuple[str | None, bool, bool]:
        """(answer text or None, leaks PII, citations valid) for this trace's kind."""
        rng = self.rng
        cited = sorted(rng.sample(numbers, k=min(len(numbers), rng.randint(1, 2))))
        body = f"About {self.topic}: they {self.facts[0]} [{cited[0]}]"
        if len(cited) > 1:
            body += f" and they {self.facts[1]} [{cited[1]}]"
        body += "."
        if self.kind == "empty":
            return None, False, True
        if self.kind == "no_citations":
            return f"About {self.topic}: they {self.facts[0]} and {self.facts[2]}.", False, True
        if self.kind == "dangling":
            missing = [n for n in range(1, max(numbers) + 4) if n not in numbers]
            return f"{body} Also see [{rng.choice(missing)}].", False, False
        if self.kind == "pii":
            pii = rng.choice(PII_SENTENCES).format(
                name=rng.choice(NAMES),
                last=rng.choice(LASTS),
                d=rng.randint(10, 99),
                ssn=f"{rng.randint(100, 599)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
            )
            return f"{body} {pii}", True, True
        return body, False, True

    def trace(self, name: str, observations: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        root = observations[0]
        skew = self.rng.choice((0, 0, 3, 12))  # SDKs stamp the trace a few ms before the root span
        return {
            "id": self.trace_id,
            "name": name,
            "timestamp": (datetime.fromisoformat(root["startTime"]) - timedelta(milliseconds=skew)).isoformat(),
            "environment": self.environment,
            "userId": self.user_id,
            "sessionId": f"session-{self.index % 7}",
            "tags": self.tags,
            "release": "2.3.1",
            "input": fields.get("input", root.get("input")),
            "output": fields.get("output", root.get("output")),
            "metadata": fields.get("metadata", {}),
            "observations": observations,
        }

    def obs(
        self,
        type_: str,
        name: str,
        start_ms: int,
        end_ms: int,
        *,
        parent: str | None,
        input: Any = None,
        output: Any = None,
        **extra: Any,
    ) -> dict[str, Any]:
        return {
            "id": extra.pop("id", None) or self.oid(),
            "traceId": self.trace_id,
            "type": type_,
            "name": name,
            "startTime": self.at(start_ms),
            "endTime": self.at(end_ms),
            "parentObservationId": parent,
            "input": input,
            "output": output,
            "metadata": extra.pop("metadata", {}),
            "level": "DEFAULT",
            **extra,
        }


def numbered_block(docs: list[str], numbers: list[int] | None = None) -> str:
    return "\n".join(f"[{n}] {d}" for n, d in zip(numbers or range(1, len(docs) + 1), docs, strict=True))


# -- shapes ----------------------------------------------------------------------------------
def plain_rag(d: _Draw) -> Case:
    rng = d.rng
    q = d.question()
    docs = d.docs()
    numbers = list(range(1, len(docs) + 1))
    answer, pii, valid = d.answer(numbers)
    root_id, retr_id, gen_id, guard_id = d.oid(), d.oid(), d.oid(), d.oid()
    style = rng.choice(("documents", "items", "strings", "chunks0", "json_text"))
    if style == "documents":
        out: Any = {"documents": [{"content": t, "score": round(0.9 - 0.1 * j, 2)} for j, t in enumerate(docs)]}
    elif style == "items":
        out = {"items": [{"id": f"doc-{j + 11}", "text": t} for j, t in enumerate(docs)]}
    elif style == "strings":
        out = list(docs)
    elif style == "chunks0":  # numbered from 0, listed in reverse: numbers still say the order
        out = {"chunks": [{"chunk": t, "index": j} for j, t in reversed(list(enumerate(docs)))]}
    else:
        out = json.dumps({"documents": [{"content": t} for t in docs]})
    empty_answer: Any = rng.choice(("", None, "   ")) if answer is None else answer
    gen_output: Any = empty_answer
    if answer is not None and rng.random() < 0.4:
        gen_output = {"role": "assistant", "content": answer}
    root_input: Any = rng.choice(({"question": q}, {"query": q}, q))
    observations = [
        d.obs(
            "SPAN",
            "rag-request",
            0,
            3000,
            parent=None,
            input=root_input,
            output={"status": "completed", "steps": 4},
        ),
        d.obs(
            "SPAN",
            rng.choice(("retrieve", "vector-search", "fetch_context", "kb_lookup", "get_docs")),
            50,
            400,
            parent=root_id,
            id=retr_id,
            input={"query": q},
            output=out,
        ),
        d.obs("SPAN", "rerank", 410, 450, parent=root_id, input={"k": len(docs)}, output={"kept": len(docs)}),
        d.obs(
            "GENERATION",
            "llm-answer",
            500,
            2600,
            parent=root_id,
            id=gen_id,
            input=[
                {"role": "system", "content": "Answer from the documents and cite them as [n]."},
                {"role": "user", "content": f"Documents:\n{numbered_block(docs)}\n\nQuestion: {q}"},
            ],
            output=gen_output,
            model="gpt-4o-mini",
        ),
        d.obs("GUARDRAIL", "output-moderation", 2610, 2950, parent=root_id, id=guard_id, input=answer, output="pass"),
        d.obs(
            "GENERATION",
            "moderation-llm",
            2620,
            2940,
            parent=guard_id,
            input=[{"role": "user", "content": "Is this safe?"}],
            output="SAFE",
        ),
    ]
    observations[0]["id"] = root_id
    trace = d.trace("rag-app", observations, input={"question": q}, output=answer)
    return Case("plain_rag", trace, Truth(q, answer, docs, None, pii, valid, d.kind))


def langchain_rag(d: _Draw) -> Case:
    rng = d.rng
    q = d.question()
    docs = d.docs()
    documents = [
        {
            "page_content": t,
            "metadata": {"source": f"kb/{d.topic.replace(' ', '_')}.md", "page": rng.randint(1, 40)},
            "type": "Document",
            "id": rng.choice((None, str(uuid.UUID(int=rng.getrandbits(128))))),
        }
        for t in docs
    ]
    numbers: list[int] | None = None
    cite_numbers = list(range(1, len(docs) + 1))
    if rng.random() < 0.08:  # a blank Document in the middle: the model still saw it as [2]
        documents.insert(1, {"page_content": "", "metadata": {"source": "kb/empty.md"}, "type": "Document"})
        cite_numbers = [1, *range(3, len(docs) + 2)]
        numbers = cite_numbers
    answer, pii, valid = d.answer(cite_numbers)
    root_id, chain_id = d.oid(), d.oid()
    key = rng.choice(("input", "question"))
    root_output: Any = {key: q, "context": documents, "answer": answer if answer is not None else ""}
    if answer is not None and rng.random() < 0.3:
        root_output = answer  # a chain ending in StrOutputParser
    context = "\n".join(f"[{n}] {doc['page_content']}" for n, doc in enumerate(documents, start=1))
    gen_output: Any = {"role": "assistant", "content": answer if answer is not None else ""}
    observations = [
        d.obs(rng.choice(("SPAN", "CHAIN")), "RunnableSequence", 0, 2500, parent=None, id=root_id, input={key: q}),
        d.obs("RETRIEVER", "VectorStoreRetriever", 20, 300, parent=root_id, input=q, output=documents),
        d.obs(
            "CHAIN",
            "stuff_documents_chain",
            310,
            2450,
            parent=root_id,
            id=chain_id,
            input={key: q, "context": documents},
            output=answer or "",
        ),
        d.obs(
            "GENERATION",
            "ChatOpenAI",
            320,
            2400,
            parent=chain_id,
            input=[
                {"role": "system", "content": f"Use the context to answer; cite [n].\n\n{context}"},
                {"role": "user", "content": q},
            ],
            output=gen_output,
            model="gpt-4o",
        ),
        d.obs("SPAN", "StrOutputParser", 2405, 2440, parent=chain_id, input=gen_output, output=answer or ""),
    ]
    observations[0]["output"] = root_output
    trace = d.trace("langchain-rag", observations)
    return Case("langchain_rag", trace, Truth(q, answer, docs, numbers, pii, valid, d.kind))


def tool_agent(d: _Draw) -> Case:
    rng = d.rng
    q = d.question()
    docs = d.docs(rng.randint(3, 5))
    ranks = list(range(1, len(docs) + 1))
    numbers: list[int] | None = None
    if rng.random() < 0.1:  # a deduplicated result left a gap in the ranks
        ranks = [r if r < 3 else r + 1 for r in ranks]
        numbers = ranks
    answer, pii, valid = d.answer(ranks)
    results = [
        {"title": f"{d.topic.title()} guide {r}", "snippet": t, "url": f"https://example.org/{r}", "rank": r}
        for r, t in zip(ranks, docs, strict=True)
    ]
    if rng.random() < 0.3:
        rng.shuffle(results)  # listed out of rank order; the ranks still name them
    root_id = d.oid()
    root_input: Any = rng.choice(({"input": q}, [{"role": "user", "content": q}]))
    final_content = answer if answer is not None else rng.choice(("", None))
    observations = [
        d.obs(
            "AGENT",
            "research-agent",
            0,
            6000,
            parent=None,
            id=root_id,
            input=root_input,
            output={"output": answer, "intermediate_steps": 2},
        ),
        d.obs(
            "GENERATION",
            "ChatOpenAI",
            10,
            900,
            parent=root_id,
            input=[{"role": "user", "content": q}],
            output={
                "role": "assistant",
                "content": None,
                "tool_calls": [{"name": "web_search", "arguments": json.dumps({"query": q})}],
            },
        ),
        d.obs(
            "TOOL",
            rng.choice(("web_search", "search_web", "tavily_search")),
            910,
            1800,
            parent=root_id,
            input={"query": q},
            output={"query": q, "results": results},
        ),
    ]
    end = 1800
    if rng.random() < 0.4:
        observations.append(
            d.obs("TOOL", "calculator", 1810, 1850, parent=root_id, input={"expression": "6*7"}, output="42")
        )
        end = 1850
    observations.append(
        d.obs(
            "GENERATION",
            "ChatOpenAI",
            end + 10,
            5900,
            parent=root_id,
            input=[
                {"role": "user", "content": q},
                {"role": "tool", "content": json.dumps({"results": results})},
            ],
            output={"role": "assistant", "content": final_content},
        )
    )
    trace = d.trace("research-agent", observations)
    return Case("tool_agent", trace, Truth(q, answer, docs, numbers, pii, valid, d.kind))


def single_call(d: _Draw) -> Case:
    rng = d.rng
    q = d.question()
    docs = d.docs()
    answer, pii, valid = d.answer(list(range(1, len(docs) + 1)))
    prompt = f"Context:\n{numbered_block(docs)}\n\nQuestion: {q}"
    content = answer if answer is not None else rng.choice(("", None))
    output: Any = {"role": "assistant", "content": content}
    if rng.random() < 0.3:
        output = content
    observations = [
        d.obs(
            "GENERATION",
            "OpenAI-generation",
            0,
            1500,
            parent=None,
            input=[
                {"role": "system", "content": "Answer from the context; cite [n]."},
                {"role": "user", "content": prompt},
            ],
            output=output,
            model="gpt-4o-mini",
        )
    ]
    trace = d.trace("OpenAI-generation", observations, input=None, output=None)
    return Case("single_call", trace, Truth(q, answer, docs, None, pii, valid, d.kind))


def items_retriever(d: _Draw) -> Case:
    rng = d.rng
    q = d.question()
    docs = d.docs(rng.randint(3, 6))
    answer, pii, valid = d.answer(list(range(1, len(docs) + 1)))
    root_id = d.oid()
    items = [{"id": f"kb-{rng.randint(100, 999)}", "text": t, "score": 0.5} for t in docs]
    observations = [
        d.obs(
            "SPAN",
            "search-app",
            0,
            2000,
            parent=None,
            id=root_id,
            input=q,
            output={"answer": answer if answer is not None else rng.choice(("", None))},
        ),
        d.obs(
            rng.choice(("RETRIEVER", "SPAN")), "retriever", 10, 200, parent=root_id, input=q, output={"items": items}
        ),
        d.obs(
            "GENERATION",
            "generate",
            210,
            1900,
            parent=root_id,
            input=f"Sources:\n{numbered_block(docs)}\n\nAnswer: {q}",
            output=answer if answer is not None else "",
        ),
    ]
    trace = d.trace("search-app", observations)
    return Case("items_retriever", trace, Truth(q, answer, docs, None, pii, valid, d.kind))


def llamaindex(d: _Draw) -> Case:
    rng = d.rng
    q = d.question()
    docs = d.docs()
    answer, pii, valid = d.answer(list(range(1, len(docs) + 1)))
    root_id = d.oid()
    nodes = [
        {
            "node": {
                "id_": str(uuid.UUID(int=rng.getrandbits(128))),
                "text": t,
                "metadata": {"file_name": "notes.txt"},
            },
            "score": round(0.8 - 0.05 * j, 3),
        }
        for j, t in enumerate(docs)
    ]
    retriever_output: Any = {"nodes": nodes} if rng.random() < 0.5 else nodes
    content = answer if answer is not None else ""
    observations = [
        d.obs(
            "SPAN",
            "query",
            0,
            2200,
            parent=None,
            id=root_id,
            input=q,
            output={"response": answer if answer is not None else rng.choice(("", None)), "source_nodes": nodes},
        ),
        d.obs("RETRIEVER", "retrieve", 10, 300, parent=root_id, input={"query_str": q}, output=retriever_output),
        d.obs(
            "GENERATION",
            "llm",
            310,
            2100,
            parent=root_id,
            input=[
                {"role": "system", "content": "You are a helpful assistant."},
                {
                    "role": "user",
                    "content": f"Context information is below.\n{numbered_block(docs)}\n\nQuery: {q}\nAnswer: ",
                },
            ],
            output={"role": "assistant", "content": content},
        ),
    ]
    trace = d.trace("llamaindex-query", observations)
    return Case("llamaindex", trace, Truth(q, answer, docs, None, pii, valid, d.kind))


ATHENA_KINDS = {
    "empty_output": "empty",
    "pii": "pii",
    "dangling_citation": "dangling",
    "wrong_citation": "dangling",
    "no_citations": "no_citations",
}


def athena_cases(n: int, seed: int) -> Iterator[Case]:
    """athena traces (defects as the bundled generator plants them), without the id-less ones."""
    from implementations.athena.generate_traces import generate_traces

    made = 0
    for generated in generate_traces(n * 2, seed=seed, base_time=BASE_TIME, hours=20):
        if made >= n:
            return
        if not (generated.trace_id or "").strip() or not any(r["name"] == "recommendation" for r in generated.rows):
            continue
        rows = [dict(r) for r in generated.rows]
        root = next(r for r in rows if r["parentObservationId"] is None)
        recommendation = next(r for r in rows if r["name"] == "recommendation")
        lookup = next((r for r in rows if r["name"] == "rule-lookup"), None)
        raw = recommendation["output"]
        answer = json.dumps(json.loads(raw), ensure_ascii=False) if _is_json(raw) else (raw or None)
        if lookup is not None:
            docs = [item["text"] for item in json.loads(lookup["output"])["items"]]
        else:
            prompt = json.loads(recommendation["input"])[-1]["content"]
            docs = [line.split("] ", 1)[1] for line in prompt.split("\n") if line[:1] == "[" and "] " in line]
        defect = generated.defect or "clean"
        question = json.loads(root["input"])["question"]
        trace = {
            "id": generated.trace_id,
            "name": root.get("name"),
            "timestamp": root["startTime"],
            "environment": root["environment"],
            "userId": root["userId"],
            "sessionId": root["sessionId"],
            "tags": root["tags"],
            "release": root["release"],
            "input": root["input"],
            "output": root["output"],
            "metadata": root["metadata"] or {},
            "observations": rows,
        }
        truth = Truth(
            question,
            answer,
            docs,
            None,
            pii=defect == "pii",
            citations_valid=defect not in ("dangling_citation", "wrong_citation"),
            kind=ATHENA_KINDS.get(defect, "clean"),
            docs_contain=True,
        )
        made += 1
        yield Case("athena", trace, truth)


def _is_json(raw: Any) -> bool:
    try:
        json.loads(raw)
    except (TypeError, ValueError):
        return False
    return True


BUILDERS = {
    "plain_rag": plain_rag,
    "langchain_rag": langchain_rag,
    "tool_agent": tool_agent,
    "single_call": single_call,
    "items_retriever": items_retriever,
    "llamaindex": llamaindex,
}


def generate(shape: str, n: int, seed: int = 1) -> list[Case]:
    """`n` traces of one shape, deterministic given the seed."""
    if shape == "athena":
        return list(athena_cases(n, seed))
    rng = random.Random(f"{shape}:{seed}")
    return [BUILDERS[shape](_Draw(rng, index, shape)) for index in range(n)]


# -- writing ---------------------------------------------------------------------------------
def to_rows(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """v3 trace -> v4 observation rows as an export writes them: trace fields on every row, I/O and
    metadata values as JSON text."""
    rows = []
    for obs in trace["observations"]:
        row = {k: v for k, v in obs.items()}
        row.update(
            traceId=trace["id"],
            traceName=trace.get("name"),
            tags=trace.get("tags") or [],
            environment=trace.get("environment"),
            userId=trace.get("userId"),
            sessionId=trace.get("sessionId"),
            release=trace.get("release"),
            isRootObservation=not obs.get("parentObservationId"),
        )
        for key in ("input", "output"):
            value = row.get(key)
            if value is not None and not isinstance(value, str):
                row[key] = json.dumps(value, ensure_ascii=False)
        if isinstance(row.get("metadata"), dict):
            row["metadata"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in row["metadata"].items()}
        rows.append(row)
    return rows


def write_v3(cases: list[Case], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for case in cases:
            handle.write(json.dumps(case.trace, ensure_ascii=False) + "\n")
    return path


def write_rows(cases: list[Case], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for case in cases:
            for row in to_rows(case.trace):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
