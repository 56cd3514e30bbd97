"""Zero-code extraction on traces written by real instrumentation, from a file and from Langfuse.

A monitor with `extractor: default` and no `extractor_fields` reads the captured fixtures (see
capture.py) either as a trace file or from the fake Langfuse seeded with the same rows. What it
extracts and how it scores must agree with expected.json: what a person reading each trace says
its question, answer and retrieved documents are, and the verdicts they would give.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.langfuse_server import FakeLangfuse

from shared.evaluation.item import DatasetItem
from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.sinks.local import read_results
from shared.monitoring.sources.base import InvalidRecord
from shared.monitoring.window import Window
from shared.settings import Settings
from shared.traces import parse_time

from .capture import FRAMEWORKS

HERE = Path(__file__).resolve().parent
EXPECTED: dict[str, dict[str, Any]] = json.loads((HERE / "expected.json").read_text(encoding="utf-8"))
METRICS = [
    {"key": "citation_validity"},
    {"key": "citation_validity", "name": "citations_required", "params": {"when_no_citations": "fail"}},
    {"key": "pii_leakage"},
    {"key": "non_empty"},
]
SOURCES = ("file", "langfuse")


def fixture_path(framework: str) -> Path:
    return HERE / f"{framework}.jsonl"


def fixture_window(framework: str) -> Window:
    starts = [
        parse_time(json.loads(line)["startTime"])
        for line in fixture_path(framework).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    known = [s for s in starts if s is not None]
    assert known and len(known) == len(starts)
    return Window(min(known) - timedelta(hours=1), max(known) + timedelta(hours=1), explicit=True)


def build_monitor(tmp_path: Path, framework: str, source: str, fake: FakeLangfuse) -> tuple[OnlineMonitor, Window]:
    """A monitor of source + metrics only, as a new user would write it."""
    window = fixture_window(framework)
    if source == "file":
        source_block: dict[str, Any] = {"type": "file", "path": str(fixture_path(framework))}
    else:
        fake.seed_jsonl(fixture_path(framework))
        source_block = {"type": "langfuse", "page_size": 10, "max_retries": 0}
    config = {
        "monitor": f"real-{framework}-{source}",
        "source": source_block,
        "extractor": "default",
        "window": {"since": window.since.isoformat(), "until": window.until.isoformat()},
        "sampling": {"strategy": "all"},
        "metrics": METRICS,
        "dedup": {"store": "none"},
        "publish": {"local": {"dir": str(tmp_path / "runs")}},
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    settings = Settings(
        langfuse_base_url=fake.url,
        langfuse_public_key=fake.public_key,
        langfuse_secret_key=fake.secret_key,
        langfuse_timeout_s=10,
    )
    return OnlineMonitor.from_yaml(path, settings=settings, base_dir=tmp_path), window


async def extracted_items(monitor: OnlineMonitor, window: Window) -> dict[str, DatasetItem]:
    """trace id -> what the configured extractor makes of each fetched trace."""
    items: dict[str, DatasetItem] = {}
    records = monitor.source.fetch(window)
    try:
        async for record in records:
            assert not isinstance(record, InvalidRecord), record.reason
            item = monitor.extractor(record)
            items[str(item.trace_id)] = item
    finally:
        await records.aclose()  # type: ignore[attr-defined]
        await monitor.source.aclose()
    return items


def expected_for(framework: str) -> dict[str, dict[str, Any]]:
    return {e["trace_id"]: e for e in EXPECTED.values() if e["framework"] == framework}


def squash(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def field_mismatches(entry: dict[str, Any], item: DatasetItem) -> list[str]:
    """Where the extracted item disagrees with a person's reading of the trace (empty list: agrees)."""
    problems = []
    case = entry["case"]
    if squash(item.query) != squash(entry["query"]):
        problems.append(f"{case}: query {item.query!r:.120} != {entry['query']!r}")
    if squash(item.actual_output) != squash(entry["actual_output"]):
        problems.append(f"{case}: actual_output {item.actual_output!r:.160} != {entry['actual_output']!r:.160}")
    docs = item.retrieved_content or []
    wanted = entry["retrieved"]
    if len(docs) != len(wanted) or not all(squash(w) in squash(d) for w, d in zip(wanted, docs, strict=False)):
        shown = [f"{d[:60]!r}" for d in docs[:6]]
        problems.append(f"{case}: retrieved {len(docs)} docs {shown} != {len(wanted)} docs starting {wanted[0][:40]!r}")
    return problems


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_default_extractor_reads_question_answer_and_documents(
    tmp_path: Path, fake: FakeLangfuse, framework: str, source: str
) -> None:
    monitor, window = build_monitor(tmp_path, framework, source, fake)
    items = asyncio.run(extracted_items(monitor, window))
    expected = expected_for(framework)
    assert sorted(items) == sorted(expected), "every captured trace is read once"
    problems = [p for trace_id, entry in expected.items() for p in field_mismatches(entry, items[trace_id])]
    assert not problems, f"{len(problems)} extraction mismatches:\n" + "\n".join(problems)


def verdict_of(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return row["status"]  # skipped / error: no verdict at all
    return "pass" if row["passed"] is True else "fail"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_monitor_verdicts_agree_with_a_person_reading_the_trace(
    tmp_path: Path, fake: FakeLangfuse, framework: str, source: str
) -> None:
    monitor, window = build_monitor(tmp_path, framework, source, fake)
    summary = monitor.run(since=window.since, until=window.until)
    expected = expected_for(framework)
    assert summary.counts.fetched == len(expected) and summary.counts.invalid == 0, summary.errors
    rows = read_results(str(summary.results_dir)).to_dict("records")
    verdicts = {(r["trace_id"], r["metric_name"]): verdict_of(r) for r in rows}
    problems = []
    for trace_id, entry in expected.items():
        for metric, wanted in entry["verdicts"].items():
            got = verdicts.get((trace_id, metric), "missing")
            if got != wanted:
                problems.append(f"{entry['case']}: {metric} {got} (a person says {wanted})")
    assert not problems, f"{len(problems)} verdicts disagree:\n" + "\n".join(problems)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_file_and_langfuse_give_the_same_items(tmp_path: Path, fake: FakeLangfuse, framework: str) -> None:
    from_file = asyncio.run(extracted_items(*build_monitor(tmp_path / "file", framework, "file", fake)))
    from_langfuse = asyncio.run(extracted_items(*build_monitor(tmp_path / "langfuse", framework, "langfuse", fake)))
    assert sorted(from_file) == sorted(from_langfuse)
    differing = [
        f"{trace_id}: {name}"
        for trace_id, item in from_file.items()
        for name in DatasetItem.model_fields
        if getattr(item, name) != getattr(from_langfuse[trace_id], name)
    ]
    assert not differing, "\n".join(differing)
