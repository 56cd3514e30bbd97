"""athena's extractor declares what it reads, so a sampled athena run from Langfuse reads light
roots first and then only the chosen traces' recommendation steps and field groups, and the items
come out exactly as from whole traces."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from implementations.athena.extractors import NEEDS, extract_recommendation
from implementations.athena.generate_traces import generate_rows
from shared.evaluation.item import DatasetItem
from shared.langfuse.source import LangfuseDataSource
from shared.monitoring.config import MonitorConfig
from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.needs import needs_of
from shared.monitoring.sources.base import build_source
from shared.monitoring.window import Window
from shared.settings import Settings
from tests.fakes.langfuse_server import FakeLangfuse

UNTIL = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WINDOW = Window(UNTIL - timedelta(hours=1), UNTIL, explicit=True)
READS = "GET /api/public/v2/observations"
TRACE_NAME = "underwriting-recommendation"
PATTERNS = "implementations.athena.langfuse.prompt_patterns:AthenaPromptPatterns"
N_TRACES = 500


def undeclared(record: Any) -> DatasetItem:
    """athena's extractor without its needs: what every athena run was before it declared them."""
    return extract_recommendation(record)


def athena_rows(n: int) -> Iterator[dict[str, Any]]:
    """athena traces, each with one more step the extractor never reads (a bulky audit log)."""
    for row in generate_rows(n, seed=5, base_time=UNTIL, hours=1, defects=False):
        yield row
        if row["name"] == "recommendation":
            yield {**row, "id": f"{row['id']}-audit", "name": "audit-log", "type": "SPAN", "output": "x" * 4000}


@pytest.fixture
def athena_fake(fake: FakeLangfuse) -> FakeLangfuse:
    fake.seed_observations(athena_rows(N_TRACES))
    return fake


def monitor(settings: Settings, tmp_path: Path, extractor: str, sampling: dict[str, Any]) -> OnlineMonitor:
    config = MonitorConfig.model_validate(
        {
            "monitor": "athena_reads",
            "plugins": ["implementations.athena.metrics"],
            "source": {"type": "langfuse", "trace_name": TRACE_NAME, "prompt_patterns": PATTERNS},
            "extractor": extractor,
            "metrics": [{"key": "athena_decision_present"}, {"key": "non_empty"}],
            "sampling": sampling,
            "dedup": {"store": "none"},
            "publish": {"local": {"dir": str(tmp_path / "runs")}},
        }
    )
    return OnlineMonitor(config, settings=settings, base_dir=tmp_path)


def reads_of(fake: FakeLangfuse, run: OnlineMonitor) -> tuple[int, int, int]:
    """(requests, response bytes, items evaluated) of one run, counted from zero."""
    fake.reset_counters()
    summary = run.run(since=WINDOW.since, until=WINDOW.until)
    assert summary.status == "ok" and summary.counts.fetched == N_TRACES and summary.counts.invalid == 0
    source = run.source
    assert isinstance(source, LangfuseDataSource)
    return fake.requests[READS], int(source.stats.extra["response_bytes"]), summary.counts.evaluated


def test_a_sampled_athena_run_reads_a_small_fraction_of_a_full_one(
    athena_fake: FakeLangfuse, lf_settings: Settings, tmp_path: Path
) -> None:
    declared = "implementations.athena.extractors:extract_recommendation"
    sample = {"strategy": "random", "n": 10, "seed": 7}
    full = reads_of(athena_fake, monitor(lf_settings, tmp_path / "full", declared, {"strategy": "all"}))
    sampled = reads_of(athena_fake, monitor(lf_settings, tmp_path / "sampled", declared, sample))
    before = reads_of(athena_fake, monitor(lf_settings, tmp_path / "before", f"{__name__}:undeclared", sample))
    (full_reads, full_bytes, full_items), (sampled_reads, sampled_bytes, sampled_items) = full, sampled
    before_reads, before_bytes, before_items = before

    assert full_items == N_TRACES and sampled_items == before_items == 10
    # (requests, bytes, items) here: full (6, 3.9 MB, 500), sampled (3, 0.23 MB, 10), undeclared (6, 7.6 MB, 10)
    assert sampled_reads == 3 < full_reads, "one light root page, the ten roots with their I/O, their steps"
    assert sampled_bytes < full_bytes / 10, (sampled, full)
    assert before_reads == full_reads and before_bytes > full_bytes, "undeclared: every trace read whole"


def test_the_chosen_traces_give_the_same_items_as_whole_traces(
    athena_fake: FakeLangfuse, lf_settings: Settings
) -> None:
    assert needs_of(extract_recommendation) is NEEDS
    params = {"trace_name": TRACE_NAME, "prompt_patterns": PATTERNS}
    whole = build_source("langfuse", params, settings=lf_settings, base_dir=Path.cwd())
    projected = build_source("langfuse", params, settings=lf_settings, base_dir=Path.cwd())
    assert isinstance(whole, LangfuseDataSource) and isinstance(projected, LangfuseDataSource)
    projected.plan_reads(NEEDS, light_roots=True)

    async def read() -> tuple[list[Any], list[Any]]:
        everything = [trace async for trace in whole.fetch(WINDOW)]
        roots = [root async for root in projected.fetch_roots(WINDOW)]
        return everything, await projected.hydrate(roots[::20])

    everything, chosen = asyncio.run(read())
    expected = {item.id: item for item in map(extract_recommendation, everything)}
    assert len(chosen) == N_TRACES // 20
    for trace in chosen:
        assert sorted(o.name for o in trace.observations) == [
            "location-extraction",
            "recommendation",
            "rule-lookup",
            "underwriting-recommendation",
        ], "the audit log is never read"
        assert "metadata" not in trace.root.raw and "createdAt" not in trace.root.raw, "only the groups used"
        assert extract_recommendation(trace) == expected[trace.id]
