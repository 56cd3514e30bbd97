"""What the Langfuse source reads: only what the extractor needs, sampled roots first, pipelined, 429-aware."""

import asyncio
import time
from pathlib import Path
from typing import Any

from conftest import WINDOW_SINCE, WINDOW_UNTIL
from fakes.langfuse_server import FakeLangfuse, generate_traces

from shared.langfuse.limiter import AdaptiveLimiter
from shared.langfuse.source import LangfuseDataSource
from shared.monitoring.needs import ExtractorNeeds
from shared.monitoring.sources.base import build_source
from shared.monitoring.window import Window
from shared.settings import Settings
from shared.traces import Trace

WINDOW = Window(WINDOW_SINCE, WINDOW_UNTIL, explicit=True)
READS = "GET /api/public/v2/observations"


def make_source(settings: Settings, **params: object) -> LangfuseDataSource:
    source = build_source("langfuse", {"trace_name": "athena", **params}, settings=settings, base_dir=Path.cwd())
    assert isinstance(source, LangfuseDataSource)
    return source


def fetch_all(source: LangfuseDataSource) -> list[Any]:
    async def go() -> list[Any]:
        return [record async for record in source.fetch(WINDOW)]

    return asyncio.run(go())


def seed(fake: FakeLangfuse, n: int) -> None:
    fake.seed_observations(generate_traces(n, since=WINDOW_SINCE, until=WINDOW_UNTIL, seed=4))


def test_root_only_extractor_reads_no_children(fake: FakeLangfuse, lf_settings: Settings) -> None:
    seed(fake, 60)
    source = make_source(lf_settings, page_size=25)
    source.plan_reads(ExtractorNeeds(root_only=True, field_groups={"io"}), light_roots=False)
    traces = fetch_all(source)

    assert len(traces) == 60
    assert fake.requests[READS] == 3, "three root pages and not one child query"
    root = traces[0].root
    assert [o.name for o in traces[0].observations] == ["athena-request"]
    assert traces[0].input["query"].startswith("What should I visit")
    assert "metadata" not in root.raw and "usageDetails" not in root.raw, "only the field groups used"


def test_children_are_narrowed_to_declared_names_and_never_reread_the_root(
    fake: FakeLangfuse, lf_settings: Settings
) -> None:
    seed(fake, 30)
    source = make_source(lf_settings, page_size=30)
    source.plan_reads(ExtractorNeeds(observation_names={"retrieve"}), light_roots=False)
    traces = fetch_all(source)

    assert fake.requests[READS] == 2  # one root page, one child query
    for trace in traces:
        assert sorted(o.name for o in trace.observations) == ["athena-request", "retrieve"]
        assert trace.retrieve.output["documents"]
    fake.reset_counters()

    by_type = make_source(lf_settings, page_size=30)
    by_type.plan_reads(ExtractorNeeds(observation_types={"generation"}), light_roots=False)
    assert all(sorted(o.type for o in t.observations) == ["GENERATION", "SPAN"] for t in fetch_all(by_type)), (
        "children of the declared type only"
    )


def test_light_roots_then_hydrating_a_sample_reads_a_fraction(fake: FakeLangfuse, lf_settings: Settings) -> None:
    seed(fake, 300)
    full = make_source(lf_settings)
    everything = fetch_all(full)
    full_reads, full_bytes = fake.requests[READS], full.stats.extra["response_bytes"]
    fake.reset_counters()

    source = make_source(lf_settings)
    source.plan_reads(None, light_roots=True)

    async def sample_then_hydrate() -> tuple[list[Any], list[Any]]:
        roots = [r async for r in source.fetch_roots(WINDOW)]
        return roots, await source.hydrate(roots[::30])

    roots, hydrated = asyncio.run(sample_then_hydrate())
    assert len(roots) == 300 and all("input" not in r for r in roots), "light roots carry no I/O"
    previews = [source.preview(r, "trace") for r in roots]
    assert all(
        p is not None and p.id == r["traceId"] and p.source_timestamp for p, r in zip(previews, roots, strict=True)
    )
    assert all("traceName" not in r and "name" not in r for r in roots), "a sampler on ids and times reads `core` only"

    assert len(hydrated) == 10 and all(isinstance(t, Trace) for t in hydrated)
    by_id = {t.id: t for t in everything}
    for trace in hydrated:
        assert len(trace.observations) == 3
        assert trace.input == by_id[trace.id].input
        assert trace.recommendation.generation.output == by_id[trace.id].recommendation.generation.output
    reads, response_bytes = fake.requests[READS], source.stats.extra["response_bytes"]
    assert reads == 2, "one light root page of 1,000 and one query for the sample's traces"
    assert reads < full_reads and response_bytes < full_bytes / 3


def test_the_next_root_page_is_requested_while_this_one_is_used(fake: FakeLangfuse, lf_settings: Settings) -> None:
    seed(fake, 100)
    source = make_source(lf_settings, sample_page_size=20)
    source.plan_reads(None, light_roots=True)

    async def first_then_wait() -> int:
        roots = source.fetch_roots(WINDOW)
        await anext(roots)
        await asyncio.sleep(0.3)  # the consumer is busy with the first row
        seen = fake.requests[READS]
        await roots.aclose()  # type: ignore[attr-defined]
        return seen

    assert asyncio.run(first_then_wait()) >= 2


def test_429s_lower_the_concurrency_and_nothing_is_lost(fake: FakeLangfuse, lf_settings: Settings) -> None:
    seed(fake, 200)
    fake.set_faults(rate_limit_every=3, retry_after="0")
    source = make_source(
        lf_settings, page_size=10, child_batch=5, concurrency=8, retry_initial_s=0.01, retry_max_s=0.05
    )
    traces = fetch_all(source)
    assert len({t.id for t in traces}) == 200
    assert all(len(t.observations) == 3 for t in traces)
    assert source.stats.extra["rate_limited"] == fake.statuses[429] > 0


def test_retry_after_is_honoured(fake: FakeLangfuse, lf_settings: Settings) -> None:
    seed(fake, 10)
    fake.set_faults(rate_limit_every=2, retry_after="0.6")
    source = make_source(lf_settings, page_size=10)
    started = time.monotonic()
    traces = fetch_all(source)
    assert len(traces) == 10
    assert fake.statuses[429] == 1 and time.monotonic() - started >= 0.6


def test_adaptive_limiter_halves_on_429_and_never_exceeds_its_limit() -> None:
    async def go() -> tuple[int, int, int]:
        limiter = AdaptiveLimiter(8)
        running = peak = after_429 = 0

        async def call(i: int) -> None:
            nonlocal running, peak, after_429
            async with limiter:
                running += 1
                peak = max(peak, running)
                if i == 3:
                    limiter.rate_limited()
                    after_429 = limiter.limit
                await asyncio.sleep(0.01)
                running -= 1

        await asyncio.gather(*(call(i) for i in range(4)))
        peak = 0
        await asyncio.gather(*(call(i + 10) for i in range(40)))
        return after_429, peak, limiter.limit

    after_429, later_peak, final = asyncio.run(go())
    assert after_429 == 4
    assert later_peak <= final <= 8 and final > 4, "successes grow the limit back"


def test_a_stratified_sampler_gets_the_field_it_reads_in_the_light_roots(
    fake: FakeLangfuse, lf_settings: Settings
) -> None:
    seed(fake, 20)
    source = make_source(lf_settings)
    source.plan_reads(None, light_roots=True, preview_fields=frozenset({"metadata.trace_name"}))

    async def roots() -> list[Any]:
        return [r async for r in source.fetch_roots(WINDOW)]

    previews = [source.preview(r, "trace") for r in asyncio.run(roots())]
    assert all(p is not None and p.metadata["trace_name"] == "athena" for p in previews)


def monitor_for(settings: Settings, tmp_path: Path, sampling: dict[str, Any]) -> Any:
    from shared.monitoring.config import MonitorConfig
    from shared.monitoring.monitor import OnlineMonitor

    config = MonitorConfig.model_validate(
        {
            "monitor": "reads",
            "source": {"type": "langfuse", "trace_name": "athena"},
            "metrics": [{"key": "non_empty"}],
            "sampling": sampling,
            "dedup": {"path": str(tmp_path / "ledger.csv")},
            "publish": {"local": {"dir": str(tmp_path / "runs")}},
        }
    )
    return OnlineMonitor(config, settings=settings, base_dir=tmp_path)


def test_a_monitor_samples_on_roots_and_hydrates_only_its_sample(
    fake: FakeLangfuse, lf_settings: Settings, tmp_path: Path
) -> None:
    seed(fake, 200)
    sampled = monitor_for(lf_settings, tmp_path, {"strategy": "random", "n": 10, "seed": 1})
    summary = sampled.run(since=WINDOW.since, until=WINDOW.until)
    assert summary.status == "ok" and summary.counts.fetched == 200
    assert summary.counts.sampled == summary.counts.evaluated == 10
    assert fake.requests[READS] == 2, "one light page of roots, one bulk read of the ten chosen traces"
    fake.reset_counters()

    everything = monitor_for(lf_settings, tmp_path, {"strategy": "all"})
    rest = everything.run(since=WINDOW.since, until=WINDOW.until)
    assert rest.counts.duplicates == 10 and rest.counts.evaluated == 190
    fake.reset_counters()

    again = everything.run(since=WINDOW.since, until=WINDOW.until)
    assert again.counts.duplicates == 200 and again.counts.evaluated == 0
    assert fake.requests[READS] == 1, "scored traces are dropped on their roots: no child query at all"
