"""Langfuse figures against the loopback fake, run in its own process (real SDK, real HTTP on 127.0.0.1).

1. evalmon against the SDK's own `Langfuse.run_batched_evaluation`, the same work at the same
   concurrency against the same fake, interleaved, at 0 ms and 150 ms of server latency: score
   every root observation with one cheap metric and publish the scores.
     - evalmon: OnlineMonitor (langfuse source, root fields, non_empty, Langfuse publish)
     - the SDK: run_batched_evaluation(fields core,basic,io) + flush
   Both wall times, their ratio, client CPU, and how many scores each side actually stored.
2. Full-trace scoring with the default extractor (children read too).
3. A sampled run (random n=100) against the full run: requests and response bytes.
4. Peak RSS of whole runs (sampling all, default extractor) at growing window sizes, each run in
   a fresh process: memory must stay flat in the window.
5. Confirmed score publishing, scores/s.

The fake runs in a child process so the client's CPU time is the client's alone. Both sides get
one small warm-up run first (imports, connection pools), so the figures are steady-state.
evalmon's client CPU is printed with and without the run report (report.md/html with charts: a
fixed cost per run, not per trace).

Sizes: BENCH_LANGFUSE_TRACES (10000, the issue's size; 2000 for a quick look; the SDK side at 150 ms
takes about two minutes),
BENCH_LANGFUSE_CONCURRENCY (32), BENCH_LANGFUSE_LATENCIES_MS ("0,150"), BENCH_LANGFUSE_SCORES (10000),
BENCH_LANGFUSE_RSS_SIZES ("2500,10000,50000", the issue's; all above evaluation.chunk_size).
BENCH_LANGFUSE_PROFILE=1 prints where evalmon's client CPU goes (cProfile, 0 ms run).
"""

from __future__ import annotations

import asyncio
import cProfile
import functools
import io
import os
import pstats
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.bench_pipeline import _peak_rss_mb
from benchmarks.langfuse_fake import FakeLangfuseProcess
from benchmarks.targets import record
from shared.monitoring.config import MonitorConfig
from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.summary import RunSummary
from shared.settings import Settings

UNTIL = datetime(2026, 11, 22, 12, tzinfo=UTC)
SINCE = UNTIL - timedelta(hours=1)
# Every item field on the root observation's own fields: the extractor declares root_only, so
# evalmon reads what run_batched_evaluation reads (root observations) and no children.
ROOT_FIELDS = {"query": "input", "actual_output": "output", "retrieved_content": "metadata.documents"}
OBSERVATIONS_ROUTE = "GET /api/public/v2/observations"
HAS_TARGETS = True


def settings_for(fake: FakeLangfuseProcess) -> Settings:
    return Settings(
        langfuse_base_url=fake.url,
        langfuse_public_key=fake.public_key,
        langfuse_secret_key=fake.secret_key,
        langfuse_timeout_s=60,
    )


def monitor_for(
    settings: Settings,
    workdir: Path,
    metric_name: str,
    concurrency: int,
    *,
    extractor_fields: dict[str, str] | None = None,
    sampling: dict[str, Any] | None = None,
) -> OnlineMonitor:
    config = MonitorConfig.model_validate(
        {
            "monitor": f"bench-{metric_name}",
            "source": {"type": "langfuse", "trace_name": "athena"},
            "extractor_fields": ROOT_FIELDS if extractor_fields is None else extractor_fields,
            "metrics": [{"key": "non_empty", "name": metric_name}],
            "sampling": sampling or {"strategy": "all"},
            "evaluation": {"concurrency": concurrency},
            "dedup": {"store": "none"},
            "publish": {"local": {"dir": str(workdir / "runs")}, "langfuse": True},
        }
    )
    return OnlineMonitor(config, settings=settings, base_dir=workdir)


class ReportClock:
    """Times evalmon's run report (a fixed cost per run) so per-trace CPU can be told without it."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        original = OnlineMonitor._write_report

        def timed_report(monitor: OnlineMonitor, *args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return original(monitor, *args, **kwargs)
            finally:
                self.cpu_s += time.process_time() - started

        OnlineMonitor._write_report = timed_report  # type: ignore[method-assign]

    def take(self) -> float:
        spent, self.cpu_s = self.cpu_s, 0.0
        return spent


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, this process's CPU seconds, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def evalmon_run(monitor: OnlineMonitor, since: datetime = SINCE, until: datetime = UNTIL) -> RunSummary:
    summary = monitor.run(since=since, until=until)
    if summary.status != "ok":
        raise RuntimeError(f"evalmon run {summary.status}: {summary.errors[:3]}")
    return summary


def sdk_run(
    settings: Settings, metric_name: str, concurrency: int, since: datetime = SINCE, until: datetime = UNTIL
) -> int:
    """Langfuse.run_batched_evaluation over the window's root observations; returns scores created."""
    from langfuse import Evaluation, EvaluatorInputs

    from shared.langfuse.client import make_client

    client = make_client(settings, tracing=True)  # the SDK's score queue is a no-op without tracing

    def mapper(*, item: Any) -> EvaluatorInputs:
        return EvaluatorInputs(input=item.input, output=item.output)

    def non_empty(*, input: Any, output: Any, **_: Any) -> Evaluation:
        text = str(output or "").strip()
        return Evaluation(name=metric_name, value=1.0 if text and text not in ('""', "null") else 0.0)

    filter_json = (
        '[{"type": "boolean", "column": "isRootObservation", "operator": "=", "value": true},'
        '{"type": "string", "column": "traceName", "operator": "=", "value": "athena"},'
        f'{{"type": "datetime", "column": "startTime", "operator": ">=", "value": "{since.isoformat()}"}},'
        f'{{"type": "datetime", "column": "startTime", "operator": "<", "value": "{until.isoformat()}"}}]'
    )
    result = client.run_batched_evaluation(
        mapper=mapper,
        evaluators=[non_empty],
        filter=filter_json,
        fetch_batch_size=100,
        fields="core,basic,io",
        max_concurrency=concurrency,
    )
    client.flush()
    return int(result.total_scores_created)


def warm_up(settings: Settings, workdir: Path, concurrency: int) -> None:
    """One small run each (a 2-minute slice of the window): imports and pools, not measured."""
    until = SINCE + timedelta(minutes=2)
    evalmon_run(monitor_for(settings, workdir, "warm_up_evalmon", concurrency), SINCE, until)
    sdk_run(settings, "warm_up_sdk", concurrency, SINCE, until)


def bench_compare(
    fake: FakeLangfuseProcess, settings: Settings, workdir: Path, n: int, concurrency: int, report: ReportClock
) -> None:
    latencies = [int(v) for v in os.environ.get("BENCH_LANGFUSE_LATENCIES_MS", "0,150").split(",") if v.strip()]
    warm_up(settings, workdir, concurrency)
    report.take()
    print(f"compare: {n} root observations (4 observations per trace), one cheap metric, concurrency {concurrency}")
    print(
        f"  {'latency':>8} | {'evalmon s':>9} {'cpu s':>6} {'stored':>7} | {'SDK s':>7} {'cpu s':>6} {'stored':>7} | ratio"
    )
    for latency_ms in latencies:
        fake.set_latency(latency_ms / 1000)
        ours_name, sdk_name = f"non_empty_evalmon_{latency_ms}ms", f"non_empty_sdk_{latency_ms}ms"
        monitor = monitor_for(settings, workdir, ours_name, concurrency)
        fake.reset_counters()
        summary, ours_s, ours_cpu = timed(functools.partial(evalmon_run, monitor))
        report_cpu = report.take()
        ours_counters = fake.counters()
        created, sdk_s, sdk_cpu = timed(functools.partial(sdk_run, settings, sdk_name, concurrency))
        ours_stored, sdk_stored = fake.scores_named(ours_name), fake.scores_named(sdk_name)
        print(
            f"  {latency_ms:>6}ms | {ours_s:>9.2f} {ours_cpu:>6.2f} {ours_stored:>7} | "
            f"{sdk_s:>7.2f} {sdk_cpu:>6.2f} {sdk_stored:>7} | {sdk_s / ours_s:.2f}x (target >= 2x)"
        )
        record(
            f"langfuse vs run_batched_evaluation, {latency_ms} ms",
            sdk_s / ours_s,
            target=2,
            unit="x",
            note=f"{n} traces, concurrency {concurrency}; stored {ours_stored} vs {sdk_stored}",
        )
        if latency_ms == 0:
            print(
                f"           evalmon client CPU {1000 * ours_cpu / n:.2f} ms/trace, "
                f"{1000 * (ours_cpu - report_cpu) / n:.2f} ms/trace without the run report "
                f"({report_cpu:.2f}s per run) (target <= 0.5); "
                f"{ours_counters['requests'].get(OBSERVATIONS_ROUTE, 0)} observation reads, "
                f"{ours_counters['response_bytes'] / 1e6:.1f} MB read; confirmed {summary.counts.published_langfuse}, "
                f"SDK says it created {created}"
            )
            record(
                "langfuse client CPU per trace, no report",
                1000 * (ours_cpu - report_cpu) / n,
                target=0.5,
                unit="ms",
                higher_is_better=False,
                note=f"{n} traces, 0 ms latency; with the report {1000 * ours_cpu / n:.2f} ms",
            )
    fake.set_latency(0)


def bench_default_extractor(fake: FakeLangfuseProcess, settings: Settings, workdir: Path, n: int, c: int) -> None:
    """Full-trace scoring: the default extractor reads children (retrieved documents)."""
    monitor = monitor_for(settings, workdir, "non_empty_full", c, extractor_fields={})
    fake.reset_counters()
    summary, wall, cpu = timed(lambda: evalmon_run(monitor))
    counters = fake.counters()
    print(
        f"full traces, default extractor: {n} traces in {wall:.2f}s, client CPU {1000 * cpu / n:.2f} ms/trace, "
        f"{counters['requests'].get(OBSERVATIONS_ROUTE, 0)} observation reads, "
        f"{counters['response_bytes'] / 1e6:.1f} MB read, {summary.counts.published_langfuse} scores confirmed"
    )


def bench_sampled(fake: FakeLangfuseProcess, settings: Settings, workdir: Path, n: int, c: int) -> None:
    """A random sample of 100 against the full run: what it costs the API."""
    figures = {}
    for label, sampling in (("full", None), ("sampled", {"strategy": "random", "n": 100, "seed": 3})):
        monitor = monitor_for(settings, workdir, f"non_empty_{label}", c, extractor_fields={}, sampling=sampling)
        fake.reset_counters()
        summary, wall, _ = timed(functools.partial(evalmon_run, monitor))
        counters = fake.counters()
        figures[label] = (counters["requests"].get(OBSERVATIONS_ROUTE, 0), counters["response_bytes"], wall)
        assert summary.counts.sampled == (100 if sampling else n), summary.counts
    (full_req, full_bytes, full_s), (s_req, s_bytes, s_s) = figures["full"], figures["sampled"]
    print(
        f"sampled n=100 of {n} (default extractor): {s_req} reads / {s_bytes / 1e6:.2f} MB in {s_s:.2f}s, "
        f"full run {full_req} reads / {full_bytes / 1e6:.2f} MB in {full_s:.2f}s: "
        f"requests {s_req / full_req:.2f}, bytes {s_bytes / full_bytes:.2f} of the full run (target < 0.10)"
    )
    note = f"n=100 of {n} traces"
    record(
        "langfuse sampled run, requests",
        s_req / full_req,
        target=0.1,
        unit="of full",
        higher_is_better=False,
        note=note,
    )
    record(
        "langfuse sampled run, bytes",
        s_bytes / full_bytes,
        target=0.1,
        unit="of full",
        higher_is_better=False,
        note=note,
    )


RSS_UNTIL = SINCE - timedelta(days=1)  # the RSS windows lie before the compared window


def rss_windows(sizes: list[int]) -> list[tuple[int, datetime, datetime]]:
    """One hour-long window per size, back to back, all before the compared window."""
    return [(n, RSS_UNTIL - timedelta(hours=i + 1), RSS_UNTIL - timedelta(hours=i)) for i, n in enumerate(sizes)]


def _rss_child(settings: dict[str, Any], workdir: str, since: datetime, until: datetime, queue: Any) -> None:
    from shared.process import tune_gc

    tune_gc()  # as the `evalmon` command does
    try:
        monitor = monitor_for(Settings(**settings), Path(workdir), "non_empty_rss", 32, extractor_fields={})
        wall, cpu = time.perf_counter(), time.process_time()
        summary = evalmon_run(monitor, since, until)
        queue.put(
            {
                "evaluated": summary.counts.evaluated,
                "seconds": time.perf_counter() - wall,
                "cpu_s": time.process_time() - cpu,
                "peak_rss_mb": _peak_rss_mb(),
            }
        )
    except BaseException as exc:  # report instead of leaving the parent waiting
        queue.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def bench_rss(fake: FakeLangfuseProcess, settings: Settings, workdir: Path, sizes: list[int]) -> None:
    """Peak RSS of a whole run (sampling all, default extractor, Langfuse publish) per window size."""
    import multiprocessing

    windows = rss_windows(sizes)
    for n, since, until in windows:
        fake.seed(n, since, until)
    ctx = multiprocessing.get_context("spawn")
    plain = {
        "langfuse_base_url": settings.langfuse_base_url,
        "langfuse_public_key": settings.langfuse_public_key,
        "langfuse_secret_key": fake.secret_key,
        "langfuse_timeout_s": settings.langfuse_timeout_s,
    }
    rows = []
    for n, since, until in windows:
        queue = ctx.Queue()
        proc = ctx.Process(target=_rss_child, args=(plain, str(workdir), since, until, queue))
        proc.start()
        result: dict[str, Any] = queue.get(timeout=1800)
        proc.join()
        if "error" in result:
            raise RuntimeError(f"RSS run of {n} traces: {result['error']}")
        assert result["evaluated"] == n, result
        rows.append((n, result))
    smallest = rows[0][1]["peak_rss_mb"]
    print("peak RSS, whole runs (sampling all, default extractor, Langfuse publish), one process each:")
    for n, r in rows:
        print(
            f"  {n:>7} traces: {r['peak_rss_mb']:6.0f} MB ({r['peak_rss_mb'] / smallest:.2f}x the smallest; "
            f"target <= 1.3x), {r['seconds']:.1f}s, client CPU {1000 * r['cpu_s'] / n:.2f} ms/trace"
        )
    largest_n, largest = rows[-1]
    record(
        "langfuse peak RSS, largest / smallest window",
        largest["peak_rss_mb"] / smallest,
        target=1.3,
        unit="x",
        higher_is_better=False,
        note=f"{rows[0][0]:,} vs {largest_n:,} traces: {smallest:.0f} / {largest['peak_rss_mb']:.0f} MB",
    )


def bench_publish(settings: Settings, n_scores: int, concurrency: int) -> None:
    from shared.evaluation.item import DatasetItem
    from shared.evaluation.metric import MetricResult
    from shared.evaluation.results import EvaluationResult, ResultRow
    from shared.langfuse.sink import LangfuseSink
    from shared.monitoring.config import LangfusePublishConfig
    from shared.monitoring.run_context import RunContext
    from shared.monitoring.window import Window

    per_item = 5
    rows: list[ResultRow] = []
    for i in range(n_scores // per_item):
        item = DatasetItem(id=f"{i:032x}", trace_id=f"{i:032x}", source_timestamp=SINCE)
        for m in range(per_item):
            result = MetricResult(score=(i % 10) / 10, explanation="bench")
            rows.append(ResultRow(item, f"metric_{m}", f"metric_{m}", "v1", "numeric", result))
    config = MonitorConfig.model_validate(
        {"monitor": "bench-publish", "source": {"type": "langfuse"}, "metrics": [{"key": "non_empty"}]}
    )
    run = RunContext(
        run_id="bench-publish",
        monitor="bench-publish",
        config=config,
        config_hash=config.config_hash(),
        source_key="langfuse",
        window=Window(SINCE, UNTIL, explicit=True),
        settings=settings,
        base_dir=Path.cwd(),
    )
    sink = LangfuseSink(settings, LangfusePublishConfig(enabled=True), concurrency=concurrency)
    report, wall, _ = timed(lambda: asyncio.run(sink.publish(run, EvaluationResult(rows))))
    print(
        f"publish: {len(report.stored)} of {len(rows)} scores confirmed in {wall:.2f}s = "
        f"{len(report.stored) / wall:,.0f} scores/s ({report.details.get('batches')} batches, "
        f"concurrency {concurrency})"
    )


def profile_evalmon(settings: Settings, workdir: Path, n: int, concurrency: int) -> None:
    """Where evalmon's client CPU goes (0 ms latency, root fields): cProfile, top by own time."""
    monitor = monitor_for(settings, workdir, "non_empty_profile", concurrency)
    profiler = cProfile.Profile()
    profiler.enable()
    evalmon_run(monitor)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    print(f"profile of one evalmon run over {n} traces (main thread only):")
    print(out.getvalue())


def main() -> None:
    n = int(os.environ.get("BENCH_LANGFUSE_TRACES", "10000"))
    concurrency = int(os.environ.get("BENCH_LANGFUSE_CONCURRENCY", "32"))
    n_scores = int(os.environ.get("BENCH_LANGFUSE_SCORES", "10000"))
    rss_sizes = [int(v) for v in os.environ.get("BENCH_LANGFUSE_RSS_SIZES", "2500,10000,50000").split(",") if v.strip()]
    report = ReportClock()
    with FakeLangfuseProcess() as fake, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        _, seconds, _ = timed(lambda: fake.seed(n, SINCE, UNTIL))
        print(f"seeded {n} traces (4 observations each) in a child process in {seconds:.1f}s")
        settings = settings_for(fake)
        if os.environ.get("BENCH_LANGFUSE_PROFILE"):
            profile_evalmon(settings, workdir, n, concurrency)
            return
        bench_compare(fake, settings, workdir, n, concurrency, report)
        bench_default_extractor(fake, settings, workdir, n, concurrency)
        bench_sampled(fake, settings, workdir, n, concurrency)
        bench_publish(settings, n_scores, 8)
        if rss_sizes:
            bench_rss(fake, settings, workdir, rss_sizes)


if __name__ == "__main__":
    main()
