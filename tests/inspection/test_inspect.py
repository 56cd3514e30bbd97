"""`evalmon inspect`, `evalmon init` and `evalmon validate --sample`, end to end: on a trace file
and against the fake Langfuse (the real CLI, SDK and HTTP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.langfuse_server import FakeLangfuse

from shared.monitoring.inspection import describe, tree_shape
from shared.monitoring.proposal import propose_fields
from shared.monitoring.window import iso

from .shapes import BASE_TIME, chat_traces, rag_traces, write_jsonl

EVALMON = [sys.executable, "-m", "shared.cli"]
SINCE, UNTIL = iso(BASE_TIME - timedelta(hours=1)), iso(BASE_TIME + timedelta(hours=1))
METRICS = [{"key": "non_empty"}, {"key": "pii_leakage"}, {"key": "citation_validity"}]
RAG_TREE = [
    ("rag-pipeline", "SPAN", 0, "dict{status,steps}"),
    ("retrieve", "RETRIEVER", 1, "list[dict{page_content,metadata}] x3..4"),
    ("llm", "GENERATION", 1, "str"),
]
RAG_PROPOSAL = {"actual_output": "llm.output", "query": "input.question", "retrieved_content": "retrieve.output"}


def evalmon(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EVALMON, *args],
        cwd=cwd,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_config(tmp_path: Path, source: dict[str, Any], **extra: Any) -> Path:
    body = {
        "monitor": "rag-inspected",
        "source": source,
        "window": {"since": SINCE, "until": UNTIL},
        "metrics": METRICS,
        "dedup": {"store": "none"},
        "publish": {"local": {"dir": str(tmp_path / "runs")}},
        **extra,
    }
    path = tmp_path / f"monitor-{len(list(tmp_path.glob('monitor-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


@pytest.fixture
def rag_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "rag.jsonl", rag_traces(30))


@pytest.fixture
def fake() -> Iterator[FakeLangfuse]:
    with FakeLangfuse() as server:
        server.seed_observations(rag_traces(30))
        server.seed_observations(chat_traces(10))  # another app in the same project
        yield server


def tree_of(report: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    return [(n["name"], n["type"], n["depth"], n["outputs"][0]["text"]) for n in report["tree"]]


# -- shapes --------------------------------------------------------------------------------


def test_shapes_name_keys_element_types_and_sizes() -> None:
    docs = [{"page_content": "a", "metadata": {}} for _ in range(4)]
    assert describe(docs) == "list[dict{page_content,metadata}] x4"
    assert describe({"status": "completed", "steps": 4}) == "dict{status,steps}"
    assert describe("an answer") == "str"
    assert describe([{"role": "user", "content": "hi"}, "x"]) == "list[dict{role,content}|str] x2"
    assert describe(None) == "null" and describe([]) == "list[] x0"


# -- inspect on a file ---------------------------------------------------------------------


def test_inspect_json_shows_the_tree_each_field_and_its_origin(tmp_path: Path, rag_file: Path) -> None:
    config = write_config(tmp_path, {"type": "file", "path": str(rag_file)})
    done = evalmon("inspect", str(config), "--limit", "5", "--json", "--propose", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["sampled"] == 5 and report["more_available"] is True
    assert tree_of(report) == RAG_TREE
    assert [(n["traces"], n["with_input"], n["with_output"]) for n in report["tree"]] == [(5, 5, 5)] * 3
    first = {f["name"]: f for f in report["items"][0]["fields"]}
    assert first["actual_output"]["preview"].startswith("For case 0, the flood cover rule 1 applies [1]")
    assert "llm" in first["actual_output"]["origin"] and "GENERATION" in first["actual_output"]["origin"]
    assert first["retrieved_content"]["count"] == 3 and "retrieve" in first["retrieved_content"]["origin"]
    assert first["query"]["preview"] == "What does the guideline say about flood cover for case 0?"
    assert report["proposal"]["extractor_fields"] == RAG_PROPOSAL
    assert report["warnings"] == []


def test_inspect_shows_a_wrong_extraction_and_warns(tmp_path: Path, rag_file: Path) -> None:
    config = write_config(
        tmp_path, {"type": "file", "path": str(rag_file)}, extractor_fields={"actual_output": "output"}
    )
    report = json.loads(evalmon("inspect", str(config), "--json", cwd=tmp_path).stdout)
    answer = next(f for f in report["items"][0]["fields"] if f["name"] == "actual_output")
    assert json.loads(answer["preview"]) == {"status": "completed", "steps": 4}
    assert "rag-pipeline" in answer["origin"]
    assert any(w.startswith("actual_output looks like a status object") for w in report["warnings"])


def test_inspect_console_view(tmp_path: Path, rag_file: Path) -> None:
    config = write_config(tmp_path, {"type": "file", "path": str(rag_file)})
    done = evalmon("inspect", str(config), "--limit", "2", "--propose", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "└── rag-pipeline SPAN  in 2/2 traces  input 2  output 2  -> dict{status,steps}" in text
    assert (
        "├── retrieve RETRIEVER  in 2/2 traces  input 2  output 2  -> list[dict{page_content,metadata}] x3..4" in text
    )
    assert "actual_output      For case 0, the flood cover rule 1 applies [1], and rule 2 as well [2]." in text
    assert "<- " in text
    block = text[text.index("extractor_fields:") :]
    assert yaml.safe_load(block) == {"extractor_fields": RAG_PROPOSAL}


def test_inspect_a_bad_config_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"type": "file", "path": str(tmp_path / "missing.jsonl")})
    done = evalmon("inspect", str(config), cwd=tmp_path)
    assert done.returncode == 2 and "trace file not found" in done.stderr


def test_proposals_follow_the_trace_shape(tmp_path: Path) -> None:
    from shared.traces import TraceCollection

    chat = propose_fields(TraceCollection.from_file(write_jsonl(tmp_path / "chat.jsonl", chat_traces(8))).traces)
    assert chat.extractor_fields() == {"actual_output": "output.answer", "query": "input.query"}
    assert "retrieved_content" in chat.missing
    assert propose_fields([]).extractor_fields() == {}


# -- against the fake Langfuse -------------------------------------------------------------


def test_inspect_against_langfuse_matches_the_file(tmp_path: Path, fake: FakeLangfuse, rag_file: Path) -> None:
    config = write_config(tmp_path, {"type": "langfuse", "trace_name": "rag-answer", "page_size": 10})
    done = evalmon("inspect", str(config), "--json", "--propose", "--limit", "30", cwd=tmp_path, env=fake.env())
    assert done.returncode == 0, done.stderr
    from_langfuse = json.loads(done.stdout)
    assert from_langfuse["sampled"] == 30
    assert tree_of(from_langfuse) == RAG_TREE
    assert from_langfuse["proposal"]["extractor_fields"] == RAG_PROPOSAL

    file_config = write_config(tmp_path, {"type": "file", "path": str(rag_file)})
    from_file = json.loads(evalmon("inspect", str(file_config), "--json", "--limit", "30", cwd=tmp_path).stdout)
    by_id = {v["record"]: v["fields"] for v in from_file["items"]}
    for view in from_langfuse["items"]:
        fields = {f["name"]: f["preview"] for f in view["fields"]}
        assert fields == {f["name"]: f["preview"] for f in by_id[view["record"]]}


def test_init_writes_a_valid_starter_that_scores_right(tmp_path: Path, fake: FakeLangfuse) -> None:
    out = tmp_path / "config" / "rag.yaml"
    done = evalmon(
        "init", "--source", "langfuse", "--trace-name", "rag-answer", "--out", str(out),
        "--since", SINCE, "--until", UNTIL,
        cwd=tmp_path, env=fake.env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Starter monitor written by `evalmon init` from 20 trace(s) named 'rag-answer'")
    config = yaml.safe_load(text)
    assert config["source"] == {"type": "langfuse", "trace_name": "rag-answer"}
    assert config["extractor_fields"] == RAG_PROPOSAL
    assert [m["key"] for m in config["metrics"]] == [
        "non_empty",
        "pii_leakage",
        "refusal",
        "citation_validity",
        "latency",
    ]
    assert evalmon("validate", str(out), cwd=tmp_path).returncode == 0

    run = evalmon(
        "run", str(out), "--json", "--dry-run", "--since", SINCE, "--until", UNTIL, cwd=tmp_path, env=fake.env()
    )
    summary = json.loads(run.stdout)
    assert summary["counts"]["evaluated"] == 30
    assert summary["metrics"]["citation_validity"]["pass_rate"] == 1.0
    assert summary["metrics"]["non_empty"]["pass_rate"] == 1.0
    assert summary["warnings"] == []


def test_init_refuses_to_overwrite_and_to_write_nothing_useful(tmp_path: Path, fake: FakeLangfuse) -> None:
    out = tmp_path / "taken.yaml"
    out.write_text("keep me", encoding="utf-8")
    args = ["init", "--source", "langfuse", "--trace-name", "rag-answer", "--since", SINCE, "--until", UNTIL]
    done = evalmon(*args, "--out", str(out), cwd=tmp_path, env=fake.env())
    assert done.returncode == 2 and "use --force" in done.stderr
    assert out.read_text(encoding="utf-8") == "keep me"

    missing = tmp_path / "none.yaml"
    args = ["init", "--source", "langfuse", "--trace-name", "no-such-app", "--since", SINCE, "--until", UNTIL]
    done = evalmon(*args, "--out", str(missing), cwd=tmp_path, env=fake.env())
    assert done.returncode == 1 and "no traces named 'no-such-app'" in done.stderr
    assert not missing.exists()

    done = evalmon("init", "--source", "langfuse", "--out", str(missing), cwd=tmp_path, env=fake.env())
    assert done.returncode == 2 and "--trace-name" in done.stderr


def test_init_from_a_file(tmp_path: Path, rag_file: Path) -> None:
    out = tmp_path / "from_file.yaml"
    done = evalmon("init", "--source", "file", "--path", str(rag_file), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert config["source"]["type"] == "file" and config["extractor_fields"] == RAG_PROPOSAL
    checked = evalmon("validate", "--sample", str(out), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "30 record(s), 30 item(s) extracted" in checked.stdout and "no extraction warnings" in checked.stdout


# -- validate --sample ---------------------------------------------------------------------


def test_validate_sample_prints_the_extraction_warnings(tmp_path: Path, rag_file: Path) -> None:
    wrong = write_config(
        tmp_path, {"type": "file", "path": str(rag_file)}, extractor_fields={"actual_output": "output"}
    )
    done = evalmon("validate", "--sample", str(wrong), cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # warnings are advice, not a config error
    warnings = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("warning:")]
    assert len(warnings) == 2
    assert "looks like a status object" in warnings[0] and "the same actual_output on 30 of 30" in warnings[1]

    plain = evalmon("validate", str(wrong), cwd=tmp_path)  # without --sample nothing is read
    assert plain.returncode == 0 and "warning" not in plain.stdout


def test_validate_sample_against_langfuse(tmp_path: Path, fake: FakeLangfuse) -> None:
    config = write_config(tmp_path, {"type": "langfuse", "trace_name": "rag-answer"})
    done = evalmon("validate", "--sample", "--limit", "10", str(config), cwd=tmp_path, env=fake.env())
    assert done.returncode == 0, done.stderr
    assert "10 record(s), 10 item(s) extracted" in done.stdout


def test_tree_shape_counts_repeated_observations() -> None:
    from shared.traces import Trace

    rows = rag_traces(2)
    # a second llm call in the first trace: two observations at one position of the tree
    extra = {**rows[2], "id": "extra-llm", "startTime": rows[2]["endTime"]}
    trace = Trace.from_observations([*rows[:3], extra])
    other = Trace.from_observations(rows[3:])
    nodes = {n.name: n for n in tree_shape([trace, other])}
    assert (nodes["llm"].traces, nodes["llm"].count) == (2, 3)
    assert (nodes["retrieve"].traces, nodes["retrieve"].count) == (2, 2)


REAL = Path(__file__).resolve().parents[1] / "extraction" / "real"


@pytest.mark.parametrize("framework", ["langchain", "langgraph", "observe", "openai"])
def test_proposals_on_traces_from_real_instrumentation_read_what_a_person_reads(framework: str) -> None:
    """LangChain LCEL, a LangGraph agent, @observe and langfuse.openai, captured through the fake's OTLP
    endpoint: every proposed field extracts the reading in expected.json on every trace; a field no
    single path reads is left to the default extractor, never proposed wrong."""
    from shared.monitoring.extractors import FieldPathExtractor
    from shared.traces import TraceCollection

    expected = {e["trace_id"]: e for e in json.loads((REAL / "expected.json").read_text(encoding="utf-8")).values()}
    traces = TraceCollection.from_file(REAL / f"{framework}.jsonl").traces
    proposal = propose_fields(traces)
    assert "actual_output" in proposal.fields  # every framework's answer has one place
    extractor = FieldPathExtractor(proposal.extractor_fields())
    for trace in traces:
        item, want = extractor(trace), expected[trace.id]
        if "actual_output" in proposal.fields:
            assert (item.actual_output or "").strip() == want["actual_output"].strip(), trace.id
        if "query" in proposal.fields:
            assert item.query == want["query"], trace.id
        if "retrieved_content" in proposal.fields:
            assert len(item.retrieved_content or []) == len(want["retrieved"]), trace.id
    assert set(proposal.fields) | set(proposal.missing) == {"actual_output", "query", "retrieved_content"}
