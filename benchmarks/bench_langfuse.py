"""Langfuse figures against the loopback fake (real SDK, real HTTP on 127.0.0.1).

1. Fetch 10,000 traces with their observations: HTTP requests (must grow with pages) and traces/s.
2. Publish 50,000 scores through LangfuseSink: scores/s and how many were confirmed.
3. The same work done two ways at the same concurrency, against the same fake: score every root
   observation with one cheap metric and publish the scores
     - evalmon: LangfuseDataSource -> evaluate -> LangfuseSink
     - the SDK: Langfuse.run_batched_evaluation (+ flush)
   Both times, their ratio, and how many scores each actually stored.

Sizes: BENCH_LANGFUSE_TRACES (10000), BENCH_LANGFUSE_SCORES (50000), BENCH_LANGFUSE_CONCURRENCY (8).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from fakes.langfuse_server import FakeLangfuse, generate_traces  # noqa: E402

from shared.evaluation.config import EvaluationConfig  # noqa: E402
from shared.evaluation.item import DatasetItem  # noqa: E402
from shared.evaluation.metric import MetricResult  # noqa: E402
from shared.evaluation.results import EvaluationResult, ResultRow  # noqa: E402
from shared.evaluation.runner import evaluate  # noqa: E402
from shared.langfuse.client import make_client  # noqa: E402
from shared.langfuse.sink import LangfuseSink  # noqa: E402
from shared.langfuse.source import LangfuseDataSource, LangfuseSourceParams  # noqa: E402
from shared.langfuse.trace import Trace, prompt_text  # noqa: E402
from shared.monitoring.config import LangfusePublishConfig, MonitorConfig  # noqa: E402
from shared.monitoring.run_context import RunContext  # noqa: E402
from shared.monitoring.window import Window  # noqa: E402
from shared.settings import Settings  # noqa: E402

UNTIL = datetime(2026, 11, 22, 12, tzinfo=UTC)
SINCE = UNTIL - timedelta(hours=1)
WINDOW = Window(SINCE, UNTIL, explicit=True)


def settings_for(fake: FakeLangfuse) -> Settings:
    return Settings(
        langfuse_base_url=fake.url,
        langfuse_public_key=fake.public_key,
        langfuse_secret_key=fake.secret_key,
        langfuse_timeout_s=60,
    )


def run_context(settings: Settings, monitor: str) -> RunContext:
    config = MonitorConfig.model_validate(
        {"monitor": monitor, "source": {"type": "langfuse"}, "metrics": [{"key": "non_empty"}]}
    )
    return RunContext(
        run_id=f"bench-{monitor}",
        monitor=monitor,
        config=config,
        config_hash=config.config_hash(),
        source_key="langfuse",
        window=WINDOW,
        settings=settings,
        base_dir=Path.cwd(),
    )


async def fetch_all(settings: Settings, page_size: int = 100) -> tuple[list[Trace], LangfuseDataSource]:
    source = LangfuseDataSource(LangfuseSourceParams(page_size=page_size), settings=settings, base_dir=Path.cwd())
    traces = [t async for t in source.fetch(WINDOW) if isinstance(t, Trace)]
    return traces, source


def bench_fetch(fake: FakeLangfuse, settings: Settings, n: int) -> None:
    fake.reset_counters()
    started = time.perf_counter()
    traces, source = asyncio.run(fetch_all(settings))
    elapsed = time.perf_counter() - started
    observations = sum(len(t.observations) for t in traces)
    pages = source.stats.extra.get("pages")
    print(
        f"fetch: {len(traces)} traces ({observations} observations) in {elapsed:.2f}s = "
        f"{len(traces) / elapsed:,.0f} traces/s; {source.stats.requests} HTTP requests for {pages} root pages "
        f"(server counted {fake.requests['GET /api/public/v2/observations']})"
    )
    assert len(traces) == n, f"expected {n} traces, fetched {len(traces)}"


def bench_publish(fake: FakeLangfuse, settings: Settings, n_scores: int, concurrency: int) -> None:
    per_item = 5
    rows: list[ResultRow] = []
    for i in range(n_scores // per_item):
        item = DatasetItem(id=f"{i:032x}", trace_id=f"{i:032x}", source_timestamp=SINCE)
        for m in range(per_item):
            result = MetricResult(score=(i % 10) / 10, explanation="bench")
            rows.append(ResultRow(item, f"metric_{m}", f"metric_{m}", "v1", "numeric", result))
    sink = LangfuseSink(settings, LangfusePublishConfig(enabled=True), concurrency=concurrency)
    before = len(fake.score_ids())
    started = time.perf_counter()
    report = asyncio.run(sink.publish(run_context(settings, "bench-publish"), EvaluationResult(rows)))
    elapsed = time.perf_counter() - started
    print(
        f"publish: {len(report.stored)} of {len(rows)} scores confirmed in {elapsed:.2f}s = "
        f"{len(report.stored) / elapsed:,.0f} scores/s ({report.details.get('batches')} batches, "
        f"concurrency {concurrency}); fake now holds {len(fake.score_ids()) - before} new scores"
    )


async def evalmon_pipeline(settings: Settings, concurrency: int) -> int:
    """Fetch root observations (as complete traces), score output non-emptiness, publish."""
    from shared.metrics.basic import NonEmpty

    traces, _ = await fetch_all(settings)
    items = [
        DatasetItem(id=t.id or "", trace_id=t.id, actual_output=prompt_text(t.output), source_timestamp=t.timestamp)
        for t in traces
    ]
    metric = NonEmpty(name="non_empty_evalmon")
    result = await evaluate(items, [metric], EvaluationConfig(concurrency=concurrency))
    sink = LangfuseSink(settings, LangfusePublishConfig(enabled=True), concurrency=concurrency)
    report = await sink.publish(run_context(settings, "bench-compare"), result)
    return len(report.stored)


def sdk_pipeline(settings: Settings, concurrency: int) -> None:
    """The same work with Langfuse.run_batched_evaluation (scores go through the SDK's queue)."""
    from langfuse import Evaluation, EvaluatorInputs

    client = make_client(settings, tracing=True)  # the SDK's score queue is a no-op without tracing

    def mapper(*, item: object) -> EvaluatorInputs:
        return EvaluatorInputs(input=getattr(item, "input", None), output=getattr(item, "output", None))

    def non_empty(*, input: object, output: object, **_: object) -> Evaluation:
        text = str(output or "").strip()
        return Evaluation(name="non_empty_sdk", value=1.0 if text and text not in ('""', "null") else 0.0)

    filter_json = (
        '[{"type": "boolean", "column": "isRootObservation", "operator": "=", "value": true},'
        f'{{"type": "datetime", "column": "startTime", "operator": ">=", "value": "{SINCE.isoformat()}"}},'
        f'{{"type": "datetime", "column": "startTime", "operator": "<", "value": "{UNTIL.isoformat()}"}}]'
    )
    client.run_batched_evaluation(
        mapper=mapper,
        evaluators=[non_empty],
        filter=filter_json,
        fetch_batch_size=100,
        fields="core,basic,io",
        max_concurrency=concurrency,
    )
    client.flush()


def bench_compare(fake: FakeLangfuse, settings: Settings, n: int, concurrency: int) -> None:
    started = time.perf_counter()
    ours_confirmed = asyncio.run(evalmon_pipeline(settings, concurrency))
    ours_s = time.perf_counter() - started
    ours_stored = sum(1 for s in fake.scores() if s["name"] == "non_empty_evalmon")

    started = time.perf_counter()
    sdk_pipeline(settings, concurrency)
    sdk_s = time.perf_counter() - started
    sdk_stored = sum(1 for s in fake.scores() if s["name"] == "non_empty_sdk")

    print(f"compare ({n} root observations, one cheap metric, concurrency {concurrency}):")
    print(
        f"  evalmon (fetch traces + evaluate + confirmed publish): {ours_s:.2f}s, stored {ours_stored} "
        f"(confirmed {ours_confirmed})"
    )
    print(f"  Langfuse.run_batched_evaluation (+ flush):             {sdk_s:.2f}s, stored {sdk_stored}")
    print(f"  ratio sdk/evalmon time: {sdk_s / ours_s:.2f}x")


def main() -> None:
    n_traces = int(os.environ.get("BENCH_LANGFUSE_TRACES", "10000"))
    n_scores = int(os.environ.get("BENCH_LANGFUSE_SCORES", "50000"))
    concurrency = int(os.environ.get("BENCH_LANGFUSE_CONCURRENCY", "8"))
    with FakeLangfuse() as fake:
        started = time.perf_counter()
        fake.seed_observations(generate_traces(n_traces, since=SINCE, until=UNTIL))
        print(
            f"seeded {n_traces} traces ({len(fake.state.observations)} observations) in "
            f"{time.perf_counter() - started:.1f}s"
        )
        settings = settings_for(fake)
        bench_fetch(fake, settings, n_traces)
        bench_publish(fake, settings, n_scores, concurrency)
        bench_compare(fake, settings, n_traces, concurrency)


if __name__ == "__main__":
    main()
