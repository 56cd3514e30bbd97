"""Postgres benchmarks (issue 4): bulk publishing and the ledger's candidate lookup.

- publish: 100,000 metric results (20,000 items x 5 metrics) in one run -> rows/s
  (target >= 50,000 rows/s), first publish and a republish (pure upsert) of the same run.
- ledger: `filter_unscored` on 10,000 candidates against 1,000,000 recorded items -> ms
  (target <= 200 ms), with every candidate already scored (the steady state of overlapping
  windows) and with half of them new (claims taken).

Runs against EVALMON_BENCH_DATABASE_URL, else DATABASE_URL, else the local test server, in a
throw-away schema that is dropped afterwards. Prints `skipped` when no server is reachable.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from pydantic import SecretStr

from benchmarks.targets import machine_note, record
from shared.database.ledger import PostgresScoredItemsStore
from shared.database.migrate import migrate
from shared.database.sink import PostgresSink
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricResult
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.monitoring.config import MonitorConfig
from shared.monitoring.run_context import RunContext, new_run_id
from shared.monitoring.window import Window
from shared.settings import Settings

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
N_ITEMS, N_METRICS = 20_000, 5
N_RECORDED, N_CANDIDATES = 1_000_000, 10_000
PUBLISH_TARGET_ROWS_S, LOOKUP_TARGET_MS = 50_000, 200.0
HAS_TARGETS = True


def _url() -> str:
    return os.environ.get("EVALMON_BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or DEFAULT_URL


def _run_context(settings: Settings) -> RunContext:
    config = MonitorConfig.model_validate(
        {"monitor": "bench", "source": {"type": "file", "path": "x.jsonl"}, "metrics": [{"key": "m"}]}
    )
    now = datetime.now(UTC)
    return RunContext(
        run_id=new_run_id("bench"),
        monitor="bench",
        config=config,
        config_hash=config.config_hash(),
        source_key="bench-src",
        window=Window(now - timedelta(hours=1), now),
        settings=settings,
        base_dir=Path("."),
    )


def _results() -> EvaluationResult:
    rng = random.Random(0)
    now = datetime.now(UTC)
    rows: list[ResultRow] = []
    for n in range(N_ITEMS):
        item = DatasetItem(
            id=f"trace-{n:07d}",
            trace_id=f"trace-{n:07d}",
            query=f"What is the best plan for customer {n}?",
            actual_output="A reasonably long answer with a citation [1] and some detail. " * 4,
            source_timestamp=now - timedelta(seconds=n),
            metadata={"user": f"u{n % 500}", "tags": ["prod", "eu"]},
        )
        for m in range(N_METRICS):
            score = rng.random()
            rows.append(
                ResultRow(
                    item=item,
                    metric_name=f"metric_{m}",
                    metric_key=f"metric_{m}",
                    metric_version="abc123def456",
                    score_type="numeric",
                    result=MetricResult(
                        score=score,
                        passed=score >= 0.5,
                        threshold=0.5,
                        explanation="heuristic",
                        signals={"matches": m, "detail": {"x": score}},
                    ),
                )
            )
    return EvaluationResult(rows=rows)


async def _bench_publish(settings: Settings) -> tuple[float, float]:
    results = _results()
    run = _run_context(settings)
    sink = PostgresSink(settings)
    try:
        await sink.check(run)
        started = time.perf_counter()
        report = await sink.publish(run, results)
        first = time.perf_counter() - started
        if not report.ok:
            raise RuntimeError(report.error)
        started = time.perf_counter()
        report = await sink.publish(run, results)
        again = time.perf_counter() - started
        if not report.ok:
            raise RuntimeError(report.error)
    finally:
        await sink.aclose()
    return len(results) / first, len(results) / again


def _load_ledger(settings: Settings) -> None:
    with psycopg.connect(_url(), autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.evalmon_db_schema}"')
        conn.execute(
            "INSERT INTO scored_items (monitor, source_key, item_id, metric_name, metric_version, run_id) "
            "SELECT 'bench', 'bench-src', 'trace-' || lpad(g::text, 7, '0'), 'metric_0', 'v1', 'seed' "
            f"FROM generate_series(0, {N_RECORDED - 1}) g"
        )
        conn.execute("VACUUM ANALYZE scored_items")


async def _bench_lookup(settings: Settings) -> tuple[float, float, float]:
    rng = random.Random(1)
    versions = {"metric_0": "v1"}
    store = PostgresScoredItemsStore("bench", "bench-src", settings=settings, claim_ttl_s=600)
    await store.open("bench-run")
    scored_ms: list[float] = []
    mixed_ms: list[float] = []
    mixed_cpu_ms: list[float] = []
    try:
        await store.filter_unscored([DatasetItem(id="trace-0000000")], versions)  # warm the pool
        for rep in range(5):
            old = [DatasetItem(id=f"trace-{n:07d}") for n in rng.sample(range(N_RECORDED), N_CANDIDATES)]
            started = time.perf_counter()
            pending = await store.filter_unscored(old, versions)
            scored_ms.append((time.perf_counter() - started) * 1000)
            assert pending == [], "every candidate was recorded"

            half = old[: N_CANDIDATES // 2] + [DatasetItem(id=f"new-{rep}-{n}") for n in range(N_CANDIDATES // 2)]
            rng.shuffle(half)
            started, cpu = time.perf_counter(), time.process_time()
            pending = await store.filter_unscored(half, versions)
            mixed_ms.append((time.perf_counter() - started) * 1000)
            mixed_cpu_ms.append((time.process_time() - cpu) * 1000)
            assert len(pending) == N_CANDIDATES // 2
    finally:
        await store.close()
    return statistics.median(scored_ms), statistics.median(mixed_ms), statistics.median(mixed_cpu_ms)


def main() -> None:
    url = _url()
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        print("postgres: skipped (no server reachable; start Postgres: pg_ctlcluster 15 main start)")
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    settings = Settings(database_url=SecretStr(url), evalmon_db_schema=schema)
    try:
        migrate(settings)
        first, again = asyncio.run(_bench_publish(settings))
        load = machine_note()
        print(
            f"postgres publish: {N_ITEMS * N_METRICS:,} results in one run: {first:,.0f} rows/s "
            f"(republish/upsert {again:,.0f} rows/s; target >= {PUBLISH_TARGET_ROWS_S:,}); {load}"
        )
        record(
            "postgres publish, 100k results",
            first,
            target=PUBLISH_TARGET_ROWS_S,
            unit="rows/s",
            note=f"republish (upsert) {again:,.0f} rows/s; {load}",
        )
        started = time.perf_counter()
        _load_ledger(settings)
        load_s = time.perf_counter() - started
        scored, mixed, mixed_cpu = asyncio.run(_bench_lookup(settings))
        load = machine_note()
        print(
            f"postgres ledger lookup: {N_CANDIDATES:,} candidates vs {N_RECORDED:,} recorded items: "
            f"{scored:.0f} ms all already scored, {mixed:.0f} ms half new (claims taken; client CPU "
            f"{mixed_cpu:.0f} ms); median of 5; target <= {LOOKUP_TARGET_MS:.0f} ms (ledger loaded in "
            f"{load_s:.0f} s); {load}"
        )
        record(
            "postgres ledger lookup, all scored",
            scored,
            target=LOOKUP_TARGET_MS,
            unit="ms",
            higher_is_better=False,
            note="10k candidates vs 1M recorded, median of 5",
        )
        record(
            "postgres ledger lookup, half new",
            mixed,
            target=LOOKUP_TARGET_MS,
            unit="ms",
            higher_is_better=False,
            note=f"claims taken; client CPU {mixed_cpu:.0f} ms; {load}",
        )
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
