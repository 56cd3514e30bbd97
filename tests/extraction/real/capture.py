"""Traces written by real instrumentation, captured the way Langfuse ingests them.

Four small apps answer the questions of cases.py, each traced by the real Langfuse SDK (v5) and
exported over OTLP to a Langfuse endpoint; the LLM is an OpenAI-compatible server (the loopback
fake, replying with each case's planned answer):

- langchain: an LCEL RAG chain (retriever of LangChain Documents | prompt | ChatOpenAI | parser)
  under the Langfuse LangChain callback handler. `chain` returns the answer string;
  `with_sources` returns `{"context": [Documents], "question", "answer"}`.
- langgraph: a LangGraph agent (agent node -> ToolNode with a retriever tool -> agent node), same
  handler. The fake LLM cannot emit native tool calls, so the agent node turns the model's JSON
  reply into the AIMessage tool call that ToolNode executes.
- observe: `@observe` functions forming a tool-using agent (as_type agent, generation, tool,
  retriever). `web` searches with a TOOL returning `{"results": [{title, snippet, url, rank}]}`;
  `kb` calls an unrelated TOOL, then a RETRIEVER returning `{"items": [{id, text, source}]}`.
  The agent returns `{"output": answer or None, "steps": n}`.
- openai: the `langfuse.openai` drop-in over one chat call whose prompt holds the numbered context.
  `bare` is that call alone; `wrapped` runs it inside an `@observe` span that returns None.

`langfuse.openai` patches the openai package for the whole process, so the openai app runs last
(otherwise ChatOpenAI calls would be traced twice).

Regenerate the committed fixtures (starts both fakes on loopback; run from the repo root):

    .venv/bin/python tests/extraction/real/capture.py

It writes tests/extraction/real/<framework>.jsonl (v4 observation rows, as the fake's
`GET /api/public/v2/observations` returns them with every field group) and expected.json.
`--emit` only sends the traces to a given Langfuse and OpenAI endpoint (the live test uses it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace.id_generator import IdGenerator

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):  # run as a script: make `cases` and `fakes` importable
    sys.path[:0] = [str(HERE), str(HERE.parents[1])]
    from cases import CASES, Case, Doc, case_for_text
else:
    from .cases import CASES, Case, Doc, case_for_text

FRAMEWORKS = ("langchain", "langgraph", "observe", "openai")  # openai last: its drop-in patches openai globally
TRACE_NAMES = {
    "langchain": "langchain-rag",
    "langgraph": "langgraph-agent",
    "observe": "support-agent",
    "openai": "openai-qa",
}
MODEL = "gpt-4o-mini"
CAPTURE_PUBLIC_KEY = "pk-lf-evalmon-capture"
LLM_LATENCY_S = 0.02  # the fake LLM's think time: observations get distinct, ordered timestamps
ALL_FIELD_GROUPS = "core,basic,time,io,metadata,model,usage,prompt,metrics,trace_context"
RAG_SYSTEM = "Answer from the numbered context only. Cite the context items you use as [n]."
PLAN_SYSTEM = 'Decide which tool to call. Reply with JSON only: {"tool": NAME, "query": TEXT}.'
AGENT_SYSTEM = (
    "You are a support agent. First call search_docs to find documentation, then answer citing the "
    "numbered results as [n]."
)


# -- the LLM: what the fake OpenAI server answers ----------------------------------------------
def responder(body: dict[str, Any]) -> str:
    """The fake LLM: a planning request gets the case's tool call, any other request its answer."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    text = "\n".join(str(m.get("content") or "") for m in messages)
    case = case_for_text(text)
    if case is None:
        return "I do not know."
    has_tool_result = any(m.get("role") == "tool" for m in messages)
    planning = PLAN_SYSTEM in text or (AGENT_SYSTEM in text and not has_tool_result)
    if planning and case.plan:
        return json.dumps(case.plan)
    return case.answer


def numbered(docs: Sequence[Doc]) -> str:
    return "\n".join(f"[{i}] {d.title}: {d.text}" for i, d in enumerate(docs, start=1))


class SeededIds(IdGenerator):
    """Trace and span ids from a seeded generator, so a recapture keeps the trace ids."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


# -- the apps ------------------------------------------------------------------------------------
class Apps:
    """The four instrumented apps, bound to one Langfuse project and one OpenAI endpoint."""

    def __init__(self, *, public_key: str, openai_base_url: str, openai_api_key: str) -> None:
        self.public_key = public_key
        self.openai_base_url = openai_base_url
        self.openai_api_key = openai_api_key

    def run(self, case: Case) -> None:
        from langfuse import propagate_attributes

        runner: Callable[[Case], None] = getattr(self, f"_{case.framework}")
        with propagate_attributes(
            trace_name=TRACE_NAMES[case.framework],
            tags=["evalmon-capture", case.framework],
            metadata={"case": case.id},
        ):
            runner(case)

    # LangChain LCEL RAG under the callback handler
    def _langchain(self, case: Case) -> None:
        from langchain_core.documents import Document
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.prompts import ChatPromptTemplate
        from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough
        from langfuse.langchain import CallbackHandler

        def format_docs(docs: list[Document]) -> str:
            return "\n".join(f"[{i}] {d.metadata['title']}: {d.page_content}" for i, d in enumerate(docs, start=1))

        prompt = ChatPromptTemplate.from_messages(
            [("system", RAG_SYSTEM), ("human", "Context:\n{context}\n\nQuestion: {question}")]
        )
        llm = self._chat_model()
        retriever = _docs_retriever()
        if case.variant == "chain":
            chain: Any = (
                {"context": retriever | RunnableLambda(format_docs), "question": RunnablePassthrough()}
                | prompt
                | llm
                | StrOutputParser()
            )
        else:  # with_sources: the LangChain docs' "returning sources" pattern
            answer = (
                RunnablePassthrough.assign(context=lambda x: format_docs(x["context"]))
                | prompt
                | llm
                | StrOutputParser()
            )
            chain = RunnableParallel({"context": retriever, "question": RunnablePassthrough()}).assign(answer=answer)
        handler = CallbackHandler(public_key=self.public_key)
        chain.invoke(case.question, config={"callbacks": [handler], "run_name": "rag-chain"})

    # LangGraph agent: agent node -> ToolNode(retriever tool) -> agent node
    def _langgraph(self, case: Case) -> None:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
        from langchain_core.prompts import PromptTemplate
        from langchain_core.tools import create_retriever_tool
        from langfuse.langchain import CallbackHandler
        from langgraph.graph import END, START, MessagesState, StateGraph
        from langgraph.prebuilt import ToolNode, tools_condition

        search = create_retriever_tool(
            _docs_retriever(),
            "search_docs",
            "Search the product and help-centre documentation.",
            document_prompt=PromptTemplate.from_template("[{n}] {title}: {page_content}"),
        )
        llm = self._chat_model()

        def agent(state: MessagesState) -> dict[str, list[Any]]:
            reply = llm.invoke([SystemMessage(AGENT_SYSTEM), *state["messages"]])
            call = _tool_call(reply.content)
            if call is not None:  # the fake cannot emit native tool calls: turn its JSON into one
                tool_call = {
                    "name": call["tool"],
                    "args": {"query": call["query"]},
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                }
                return {"messages": [AIMessage(content="", tool_calls=[tool_call])]}
            return {"messages": [reply]}

        graph = StateGraph(MessagesState)
        graph.add_node("agent", agent)
        graph.add_node("tools", ToolNode([search]))
        graph.add_edge(START, "agent")
        graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
        graph.add_edge("tools", "agent")
        handler = CallbackHandler(public_key=self.public_key)
        graph.compile().invoke({"messages": [HumanMessage(case.question)]}, config={"callbacks": [handler]})

    # @observe agent
    def _observe(self, case: Case) -> None:
        from langfuse import get_client, observe
        from openai import OpenAI

        client = OpenAI(base_url=self.openai_base_url, api_key=self.openai_api_key, max_retries=0)

        @observe(as_type="generation", name="plan")
        def plan(question: str) -> str:
            return complete([{"role": "system", "content": PLAN_SYSTEM}, {"role": "user", "content": question}])

        @observe(as_type="generation", name="compose_answer")
        def compose_answer(messages: list[dict[str, str]]) -> str:
            return complete(messages)

        def complete(messages: list[dict[str, str]]) -> str:
            reply = client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
            usage = reply.usage
            get_client().update_current_generation(
                model=MODEL,
                usage_details={"input": usage.prompt_tokens, "output": usage.completion_tokens} if usage else None,
            )
            return reply.choices[0].message.content or ""

        @observe(as_type="tool", name="web_search")
        def web_search(query: str) -> dict[str, Any]:
            return {
                "query": query,
                "results": [
                    {"title": d.title, "snippet": d.text, "url": d.url, "rank": i}
                    for i, d in enumerate(case.docs, start=1)
                ],
            }

        @observe(as_type="tool", name="get_order_status")
        def get_order_status(order_id: str) -> dict[str, str]:
            return {"order_id": order_id, "status": "shipped", "carrier": "DPD", "shipped_on": "2026-11-04"}

        @observe(as_type="retriever", name="kb_search")
        def kb_search(query: str, top_k: int = 3) -> dict[str, Any]:
            return {
                "items": [
                    {"id": f"kb-{zlib.crc32(d.url.encode()) % 9000 + 1000}", "text": d.text, "source": d.url}
                    for d in case.docs[:top_k]
                ]
            }

        def answer_prompt(question: str, docs: Sequence[Doc]) -> list[dict[str, str]]:
            return [
                {"role": "system", "content": RAG_SYSTEM},
                {"role": "user", "content": f"Question: {question}\n\nSources:\n{numbered(docs)}"},
            ]

        @observe(as_type="agent", name="support-agent")
        def run_agent(question: str) -> dict[str, Any]:
            if case.variant == "web":
                call = _tool_call(plan(question)) or {"query": question}
                web_search(call["query"])
                steps = 3
            else:
                get_order_status("A-1042")
                kb_search(question)
                steps = 3
            answer = compose_answer(answer_prompt(question, case.docs))
            return {"output": answer or None, "steps": steps}

        if case.variant == "web":
            run_agent(question=case.question, langfuse_public_key=self.public_key)  # type: ignore[call-arg]
        else:
            run_agent(case.question, langfuse_public_key=self.public_key)  # type: ignore[call-arg]

    # langfuse.openai drop-in
    def _openai(self, case: Case) -> None:
        from langfuse import observe
        from langfuse.openai import OpenAI  # patches openai for the whole process

        client = OpenAI(base_url=self.openai_base_url, api_key=self.openai_api_key, max_retries=0)
        messages = [
            {"role": "system", "content": RAG_SYSTEM},
            {"role": "user", "content": f"Context:\n{numbered(case.docs)}\n\nQuestion: {case.question}"},
        ]

        def ask() -> str:
            reply = client.chat.completions.create(  # type: ignore[call-overload]
                model=MODEL,
                messages=messages,
                temperature=0,
                name="answer-with-context",
                langfuse_public_key=self.public_key,
            )
            return str(reply.choices[0].message.content or "")

        if case.variant == "bare":
            ask()
            return

        @observe(name="handle-question")
        def handle_question(question: str) -> None:
            ask()  # the app sends the answer to the user and returns nothing

        handle_question(case.question, langfuse_public_key=self.public_key)  # type: ignore[call-arg]

    def _chat_model(self) -> Any:
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=MODEL, base_url=self.openai_base_url, api_key=self.openai_api_key, temperature=0, max_retries=0
        )


def _docs_retriever() -> Any:
    """An in-memory retriever: the documents of the case whose question it is asked."""
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class HelpCentreRetriever(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
            case = case_for_text(query) or _case_for_search(query)
            docs = case.docs if case else ()
            return [
                Document(page_content=d.text, metadata={"title": d.title, "source": d.url, "n": i})
                for i, d in enumerate(docs, start=1)
            ]

    return HelpCentreRetriever()


def _case_for_search(query: str) -> Case | None:
    """A planned search query (not the question itself) names its case through the plan."""
    return next((c for c in CASES if c.plan.get("query") == query), None)


def _tool_call(text: Any) -> dict[str, str] | None:
    try:
        call = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return call if isinstance(call, dict) and "tool" in call and "query" in call else None


# -- capture -------------------------------------------------------------------------------------
def emit(
    cases: Iterable[Case],
    *,
    langfuse_url: str,
    public_key: str,
    secret_key: str,
    openai_base_url: str,
    openai_api_key: str,
    seed: int = 7,
) -> None:
    """Run every case through its app, traced by the Langfuse SDK to `langfuse_url`; flush at the end."""
    from langfuse import Langfuse

    langfuse = Langfuse(
        public_key=public_key,
        secret_key=secret_key,
        base_url=langfuse_url,
        environment="production",
        release="capture-1",
        id_generator=SeededIds(seed),
    )
    apps = Apps(public_key=public_key, openai_base_url=openai_base_url, openai_api_key=openai_api_key)
    for case in sorted(cases, key=lambda c: FRAMEWORKS.index(c.framework)):
        apps.run(case)
    langfuse.flush()
    langfuse.shutdown()


def expected_entry(case: Case, trace_id: str) -> dict[str, Any]:
    """What a person reading the trace would say it holds, and the verdicts they would give."""
    return {
        "case": case.id,
        "framework": case.framework,
        "variant": case.variant,
        "trace_id": trace_id,
        "query": case.question,
        "actual_output": case.answer.strip(),
        "retrieved": [d.text for d in case.docs],
        "verdicts": case.verdicts,
    }


def case_of_trace(rows: Sequence[dict[str, Any]]) -> str | None:
    """The case id the capture stamped on a trace's rows (trace metadata `case`, JSON-encoded by SDK v5)."""
    for row in rows:
        raw = (row.get("metadata") or {}).get("case")
        if raw:
            value = json.loads(raw) if raw.startswith('"') else raw
            return str(value)
    return None


def fetch_observations(base_url: str, public_key: str, secret_key: str) -> list[dict[str, Any]]:
    """Every observation row, with every field group, as `GET /api/public/v2/observations` pages them."""
    import httpx

    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"fields": ALL_FIELD_GROUPS, "limit": 1000}
    with httpx.Client(base_url=base_url, auth=(public_key, secret_key), timeout=30) as http:
        while True:
            page = http.get("/api/public/v2/observations", params=params)
            page.raise_for_status()
            body = page.json()
            rows.extend(body["data"])
            cursor = body.get("meta", {}).get("cursor")
            if not cursor:
                return rows
            params["cursor"] = cursor


def regenerate(out_dir: Path = HERE) -> dict[str, int]:
    """Start both fakes, capture every case, write <framework>.jsonl and expected.json."""
    from fakes.langfuse_server import FakeLangfuse
    from fakes.openai_server import FakeOpenAI, OpenAIServer

    os.environ.setdefault("OTEL_SERVICE_NAME", "evalmon-capture")
    os.environ.setdefault("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=capture")
    with (
        FakeLangfuse(public_key=CAPTURE_PUBLIC_KEY) as fake,
        OpenAIServer(FakeOpenAI(responder=responder, latency_s=LLM_LATENCY_S)) as llm,
    ):
        emit(
            CASES,
            langfuse_url=fake.url,
            public_key=fake.public_key,
            secret_key=fake.secret_key,
            openai_base_url=llm.base_url,
            openai_api_key=llm.state.api_key,
        )
        rows = fetch_observations(fake.url, fake.public_key, fake.secret_key)
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["startTime"], r["id"])):
        by_trace.setdefault(row["traceId"], []).append(row)
    expected: dict[str, Any] = {}
    files: dict[str, list[dict[str, Any]]] = {f: [] for f in FRAMEWORKS}
    for trace_id, trace_rows in by_trace.items():
        case_id = case_of_trace(trace_rows)
        case = next(c for c in CASES if c.id == case_id)
        expected[case.id] = expected_entry(case, trace_id)
        files[case.framework].extend(trace_rows)
    missing = sorted({c.id for c in CASES} - set(expected))
    if missing:
        raise SystemExit(f"no trace captured for {', '.join(missing)}")
    for framework, framework_rows in files.items():
        path = out_dir / f"{framework}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in framework_rows), encoding="utf-8")
    ordered = {c.id: expected[c.id] for c in CASES}
    (out_dir / "expected.json").write_text(json.dumps(ordered, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return {f: len(r) for f, r in files.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emit", action="store_true", help="only send traces to --langfuse-url (no files written)")
    parser.add_argument("--langfuse-url")
    parser.add_argument("--public-key")
    parser.add_argument("--secret-key")
    parser.add_argument("--openai-base-url")
    parser.add_argument("--openai-api-key")
    parser.add_argument("--cases", default="", help="comma-separated case ids (default: all)")
    args = parser.parse_args(argv)
    wanted = {c for c in args.cases.split(",") if c}
    unknown = wanted - {c.id for c in CASES}
    if unknown:
        parser.error(f"unknown case id(s): {', '.join(sorted(unknown))}; valid: {', '.join(c.id for c in CASES)}")
    if args.emit:
        needed = ("langfuse_url", "public_key", "secret_key", "openai_base_url", "openai_api_key")
        absent = [f"--{n.replace('_', '-')}" for n in needed if not getattr(args, n)]
        if absent:
            parser.error(f"--emit needs {', '.join(absent)}")
        emit(
            [c for c in CASES if not wanted or c.id in wanted],
            langfuse_url=args.langfuse_url,
            public_key=args.public_key,
            secret_key=args.secret_key,
            openai_base_url=args.openai_base_url,
            openai_api_key=args.openai_api_key,
        )
        return 0
    counts = regenerate()
    print(", ".join(f"{framework}: {n} observations" for framework, n in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
