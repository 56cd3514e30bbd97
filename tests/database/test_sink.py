"""The Postgres sink: round-trips what items carry, one transaction per run, upserts on rerun."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from shared.database import lease as leases
from shared.database import sink as sink_module
from shared.database.sink import PostgresSink
from shared.errors import ConfigError, SinkError
from shared.evaluation.metric import MetricStatus
from shared.evaluation.results import EvaluationResult
from shared.monitoring.run_context import RunContext
from shared.settings import Settings

from .helpers import item, results, row, run_context


def _publish(settings: Settings, run: RunContext, res: EvaluationResult) -> Any:
    async def go() -> Any:
        sink = PostgresSink(settings)
        try:
            await sink.check(run)
            return await sink.publish(run, res)
        finally:
            await sink.aclose()

    return asyncio.run(go())


def _query(settings: Settings, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        conn.execute(f'SET search_path TO "{settings.evalmon_db_schema}"')
        return conn.execute(sql.encode(), params or []).fetchall()


def test_round_trip_of_text_numbers_and_json(migrated: Settings) -> None:
    run = run_context(migrated)
    tricky = "naïve café — 你好 🧪👩🏽‍🔬 مرحبا e\u0301 ' \" \\ \t\n\r end"
    big = "x" * (1024 * 1024 - 3) + "end"
    nested = {"a": [1, 2.5, {"b": None, "c": [True, "é", {"d": "🧪"}]}], "quote": "'\"\\", "empty": {}}
    items = [
        item(
            "uni",
            query=tricky,
            actual_output=big,
            metadata={"nested": nested},
            additional_input={"k": [1, "2"], "nul\x00key": "a\x00b", "inf": math.inf},
        ),
        item("nul-id", query="before\x00after"),
    ]
    res = results(
        row(items[0], "m1", score=0.75, explanation=tricky, signals={"nested": nested, "bad": math.nan}),
        row(items[0], "m2", score=math.nan, threshold=math.inf),
        row(items[0], "m3", score=-math.inf, status=MetricStatus.ERROR, error="boom"),
        row(items[1], "m1", score=1.0, passed=True),
    )
    report = _publish(migrated, run, res)
    assert report.ok, report.error
    assert report.stored == {("uni", "m1"), ("uni", "m2"), ("uni", "m3"), ("nul-id", "m1")}

    got = _query(migrated, "SELECT query, actual_output, metadata, inputs FROM evaluation_items WHERE item_id = 'uni'")
    query, output, metadata, inputs = got[0]
    assert query == tricky
    assert output == big and len(output) == 1024 * 1024
    assert metadata == {"nested": nested}
    assert inputs["additional_input"] == {"k": [1, "2"], "nul\ufffdkey": "a\ufffdb", "inf": None}

    scores = dict(_query(migrated, "SELECT metric_name, score FROM evaluation_results WHERE item_id = 'uni'"))
    assert scores == {"m1": 0.75, "m2": None, "m3": None}
    m1 = _query(
        migrated, "SELECT explanation, signals FROM evaluation_results WHERE metric_name = 'm1' AND item_id = 'uni'"
    )
    assert m1[0][0] == tricky
    assert m1[0][1] == {"nested": nested, "bad": None}
    m2 = _query(migrated, "SELECT threshold FROM evaluation_results WHERE metric_name = 'm2'")
    assert m2 == [(None,)]
    # NUL cannot live in Postgres text: it becomes U+FFFD, the rest of the text is intact.
    nul = _query(migrated, "SELECT item_id, query FROM evaluation_items WHERE item_id <> 'uni'")
    assert nul == [("nul-id", "before\ufffdafter")]

    view = _query(migrated, "SELECT count(*), count(trace_id) FROM evaluation_results_with_items")
    assert view == [(4, 4)]
    run_row = _query(migrated, "SELECT monitor, source_key, status, counts->>'results' FROM evaluation_runs")
    assert run_row == [("mon", "src", "aborted", "4")]  # published, closed without finish_run


def test_rerun_upserts_instead_of_duplicating(migrated: Settings) -> None:
    run = run_context(migrated)
    a, b = item("a"), item("b")
    assert _publish(migrated, run, results(row(a, "m1", score=0.1), row(b, "m1", score=0.2))).ok
    report = _publish(migrated, run, results(row(a, "m1", score=0.9), row(b, "m1", score=0.2)))
    assert report.ok
    rows = _query(migrated, "SELECT item_id, score FROM evaluation_results ORDER BY item_id")
    assert rows == [("a", 0.9), ("b", 0.2)]
    # Another run redoing the same pair at the same version overwrites it (and says it wrote it last).
    run2 = run_context(migrated)
    assert _publish(migrated, run2, results(row(item("a", query="changed"), "m1", score=0.5))).ok
    assert _query(migrated, "SELECT count(*) FROM evaluation_items") == [(2,)]
    assert _query(migrated, "SELECT query FROM evaluation_items WHERE item_id = 'a'") == [("changed",)]
    assert _query(migrated, "SELECT item_id, score, run_id FROM evaluation_results ORDER BY item_id") == [
        ("a", 0.5, run2.run_id),
        ("b", 0.2, run.run_id),
    ]
    # A new metric version is a new row: each version's result is kept.
    assert _publish(migrated, run2, results(row(a, "m1", score=0.7, version="v2"))).ok
    assert _query(migrated, "SELECT metric_version, score FROM evaluation_results WHERE item_id = 'a'") == [
        ("v1", 0.5),
        ("v2", 0.7),
    ]
    assert _query(migrated, "SELECT count(*) FROM evaluation_runs") == [(2,)]  # the run history stays
    # Two rows for one pair in a single publish: the last one wins, stored once.
    report = _publish(migrated, run2, results(row(a, "m2", score=0.1), row(a, "m2", score=0.3)))
    assert report.ok and report.stored == {("a", "m2")}
    assert _query(migrated, "SELECT score FROM evaluation_results WHERE metric_name = 'm2'") == [(0.3,)]


def test_a_run_mixing_new_and_redone_pairs_stores_each_once(migrated: Settings) -> None:
    """The next run retries the last run's errors and scores new items: one publish, both paths."""
    first = run_context(migrated)
    old = [item(f"old{n}") for n in range(5)]
    errors = results(*(row(it, "m1", score=None, status=MetricStatus.ERROR, error="timeout") for it in old))
    assert _publish(migrated, first, errors).ok
    second = run_context(migrated)
    new = [item(f"new{n}") for n in range(5)]
    report = _publish(migrated, second, results(*(row(it, "m1", score=0.8) for it in old + new)))
    assert report.ok and len(report.stored) == 10
    got = _query(migrated, "SELECT status, score, run_id, count(*) FROM evaluation_results GROUP BY 1, 2, 3")
    assert got == [("ok", 0.8, second.run_id, 10)]


def test_failure_mid_publish_leaves_nothing(migrated: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    run = run_context(migrated)
    items = [item(f"i{n}") for n in range(50)]
    real = sink_module.result_records

    def failing(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, ...]]:
        for n, record in enumerate(real(*args, **kwargs)):
            if n == 40:
                raise RuntimeError("disk on fire")
            yield record

    monkeypatch.setattr(sink_module, "result_records", failing)
    report = _publish(migrated, run, results(*(row(it) for it in items)))
    assert not report.ok and "disk on fire" in (report.error or "")
    assert report.stored == set()
    for table in ("evaluation_runs", "evaluation_items", "evaluation_results"):
        assert _query(migrated, f"SELECT count(*) FROM {table}") == [(0,)], table


def test_check_requires_migrations(pg_settings: Settings) -> None:
    run = run_context(pg_settings)
    with pytest.raises(ConfigError, match="evalmon db migrate"):
        _publish(pg_settings, run, results())


def test_unreachable_database_is_reported_without_the_url() -> None:
    secret = "postgresql://bob:hunter2-secret@127.0.0.1:1/db?connect_timeout=1"
    settings = Settings(database_url=SecretStr(secret))
    run = run_context(settings)

    async def go() -> Any:
        sink = PostgresSink(settings)
        try:
            with pytest.raises(SinkError) as caught:
                await sink.check(run)
            report = await sink.publish(run, results(row(item("a"))))
        finally:
            await sink.aclose()
        return caught.value, report

    error, report = asyncio.run(go())
    assert "hunter2" not in str(error)
    assert not report.ok and report.stored == set()
    assert "hunter2" not in (report.error or "")


def test_missing_database_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        PostgresSink(Settings(database_url=None))


def test_finish_run_sets_status_and_counts(migrated: Settings) -> None:
    run = run_context(migrated)
    summary = {"status": "ok", "counts": {"evaluated": 2, "recorded": 2}, "metrics": {"m1": {"mean": 0.5}}}

    async def go() -> bool:
        sink = PostgresSink(migrated)
        try:
            await sink.publish(run, results(row(item("a"))))
            return await sink.finish_run(run, summary)
        finally:
            await sink.aclose()

    assert asyncio.run(go()) is True
    got = _query(migrated, "SELECT status, counts, summary, finished_at IS NOT NULL FROM evaluation_runs")
    status, counts, stored_summary, finished = got[0]
    assert status == "ok" and finished
    assert counts["evaluated"] == 2 and counts["results"] == 1
    assert stored_summary == json.loads(json.dumps(summary))


def test_rows_formatted_during_the_items_upsert_and_the_rest_all_land_once(
    migrated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of one row: part of the results is formatted while the items upsert runs, the
    # rest is streamed by a second COPY; together they must be every row exactly once.
    monkeypatch.setattr(sink_module, "_FORMAT_BATCH", 1)
    run = run_context(migrated)
    items = [item(f"i{n:04d}") for n in range(600)]
    first = results(*(row(it, f"m{m}", score=n / 1000 + m) for n, it in enumerate(items) for m in range(3)))
    assert _publish(migrated, run, first).ok
    again = results(*(row(it, f"m{m}", score=-n - m) for n, it in enumerate(items) for m in range(3)))
    assert _publish(migrated, run, again).ok
    got = _query(migrated, "SELECT item_id, metric_name, score FROM evaluation_results ORDER BY 1, 2")
    assert got == [(f"i{n:04d}", f"m{m}", float(-n - m)) for n in range(600) for m in range(3)]
    hashes = dict(_query(migrated, "SELECT item_id, content_hash FROM evaluation_items"))
    assert hashes == {it.id: it.content_hash() for it in items}


def test_runs_left_running_by_a_dead_process_are_marked_aborted_by_the_next_run(migrated: Settings) -> None:
    dead, live, other_monitor = run_context(migrated), run_context(migrated), run_context(migrated, monitor="other")
    for run in (dead, live, other_monitor):  # published, never finished; only `live` has a process left
        _query(
            migrated,
            "INSERT INTO evaluation_runs (run_id, monitor, source_key, started_at) VALUES (%s, %s, 'src', now()) "
            "RETURNING 1",
            [run.run_id, run.monitor],
        )

    async def go() -> None:
        held = await leases.hold(migrated, run_id=live.run_id, monitor="mon", source_key="src", ttl_s=30)
        try:
            sink = PostgresSink(migrated)
            await sink.check(run_context(migrated))
            await sink.aclose()
        finally:
            await leases.let_go(held)

    asyncio.run(go())
    got = dict(_query(migrated, "SELECT run_id, status FROM evaluation_runs"))
    assert got == {dead.run_id: "aborted", live.run_id: "running", other_monitor.run_id: "running"}
    assert _query(migrated, "SELECT finished_at IS NOT NULL FROM evaluation_runs WHERE run_id = %s", [dead.run_id]) == [
        (True,)
    ]


def test_a_run_that_fails_between_publish_and_finish_is_marked_aborted_when_the_sink_closes(
    migrated: Settings,
) -> None:
    run = run_context(migrated)

    async def go() -> None:
        sink = PostgresSink(migrated)
        try:
            assert (await sink.publish(run, results(row(item("a"))))).ok
            assert _query(migrated, "SELECT status FROM evaluation_runs") == [("running",)]
        finally:
            await sink.aclose()  # no finish_run: the monitor died of an unexpected error

    asyncio.run(go())
    assert _query(migrated, "SELECT status, finished_at IS NOT NULL FROM evaluation_runs") == [("aborted", True)]
