"""The Postgres ledger: CSV-ledger semantics, candidate-only lookups, exclusive leased claims."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
import pytest

from shared.database import ledger as ledger_module
from shared.database.ledger import PostgresScoredItemsStore
from shared.errors import ConfigError
from shared.evaluation.item import DatasetItem
from shared.evaluation.runner import PendingItem
from shared.monitoring.ledger.base import LedgerEntry
from shared.settings import Settings

from .helpers import item

V1 = {"m1": "v1", "m2": "v1"}


def _store(settings: Settings, ttl: float = 60.0, monitor: str = "mon") -> PostgresScoredItemsStore:
    return PostgresScoredItemsStore(monitor, "src", settings=settings, claim_ttl_s=ttl)


def _entries(run_id: str, ids: Sequence[str], versions: dict[str, str], monitor: str = "mon") -> list[LedgerEntry]:
    now = datetime.now(UTC).isoformat()
    return [LedgerEntry(monitor, "src", i, m, v, run_id, now) for i in ids for m, v in versions.items()]


def _pending(
    store: PostgresScoredItemsStore, items: Sequence[DatasetItem], versions: dict[str, str]
) -> dict[str, set[str]]:
    got = asyncio.run(_filter_and_close(store, items, versions))
    return {p.item.id: set(p.metric_names or ()) for p in got}


async def _filter_and_close(
    store: PostgresScoredItemsStore, items: Sequence[DatasetItem], versions: dict[str, str]
) -> list[PendingItem]:
    """One lookup, then close: the store's lease heartbeat must not outlive the test."""
    try:
        return await store.filter_unscored(items, versions)
    finally:
        await store.close()


def test_versions_decide_what_is_still_needed(migrated: Settings) -> None:
    async def go() -> None:
        store = _store(migrated)
        await store.open("run-1")
        items = [item("a"), item("b"), item("c")]
        first = await store.filter_unscored(items, V1)
        assert {p.item.id: p.metric_names for p in first} == {i.id: frozenset(V1) for i in items}
        assert await store.record(_entries("run-1", ["a", "b"], V1) + _entries("run-1", ["c"], {"m1": "v1"})) == 5
        assert await store.record(_entries("run-1", ["a"], V1)) == 0  # idempotent
        await store.close()

        store2 = _store(migrated)
        await store2.open("run-2")
        again = await store2.filter_unscored(items, V1)
        assert {p.item.id: p.metric_names for p in again} == {"c": frozenset({"m2"})}
        await store2.release([p.item for p in again])
        # A new version of m1 makes every item eligible again, for m1 only.
        bumped = await store2.filter_unscored(items, {"m1": "v2", "m2": "v1"})
        assert {p.item.id: p.metric_names for p in bumped} == {
            "a": frozenset({"m1"}),
            "b": frozenset({"m1"}),
            "c": frozenset({"m1", "m2"}),
        }
        assert await store2.record(_entries("run-2", ["a"], {"m1": "v2"})) == 1
        await store2.close()

        # Another monitor over the same source has its own ledger.
        other = _store(migrated, monitor="other")
        await other.open("run-3")
        assert len(await other.filter_unscored(items, V1)) == 3
        await other.close()

    asyncio.run(go())


def test_duplicate_ids_in_one_page_come_back_once(migrated: Settings) -> None:
    store = _store(migrated)
    got = asyncio.run(_filter_and_close(store, [item("a"), item("a", query="dup"), item("b")], V1))
    assert [p.item.id for p in got] == ["a", "b"]
    assert got[0].item.query == "q a"


def test_open_requires_migrations(pg_settings: Settings) -> None:
    async def go() -> None:
        store = _store(pg_settings)
        try:
            await store.open("run-1")
        finally:
            await store.close()

    with pytest.raises(ConfigError, match="evalmon db migrate"):
        asyncio.run(go())


def test_lookup_uses_the_index_for_candidates_only(migrated: Settings) -> None:
    """The candidate lookup must not scan the ledger: it is looked up by primary key only."""
    assert migrated.database_url is not None
    with psycopg.connect(migrated.database_url.get_secret_value()) as conn:
        conn.execute(f'SET search_path TO "{migrated.evalmon_db_schema}"')
        conn.execute(
            "INSERT INTO scored_items (monitor, source_key, item_id, metric_name, metric_version, run_id) "
            "SELECT 'mon', 'src', 'item-' || g, m, 'v1', 'r' FROM generate_series(1, 20000) g, "
            "unnest(ARRAY['m1', 'm2']) m"
        )
        conn.execute("ANALYZE scored_items")
        ids = [f"item-{n}" for n in random.sample(range(1, 40000), 100)]
        for name, value in ledger_module.LOOKUP_SETTINGS.items():
            conn.execute("SELECT set_config(%s, %s, false)", [name, value])
        params = {"ids": ids, "names": ["m1", "m2"], "versions": ["v1", "v1"], "monitor": "mon", "source_key": "src"}
        plan = conn.execute(b"EXPLAIN (FORMAT JSON) " + ledger_module._MISSING.encode(), params).fetchone()
    assert plan is not None
    text = str(plan[0])
    assert "Seq Scan" not in text and "scored_items_pkey" in text, text[:300]


def test_claims_are_exclusive_across_concurrent_workers(migrated: Settings) -> None:
    items = [item(f"i{n:03d}") for n in range(240)]
    claimed: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(name: str) -> None:
        async def go() -> list[str]:
            store = _store(migrated)
            await store.open(name)
            mine: list[str] = []
            order = items[:]
            random.Random(name).shuffle(order)
            for page in range(0, len(order), 40):
                got = await store.filter_unscored(order[page : page + 40], V1)
                mine.extend(p.item.id for p in got)
            await store.record(_entries(name, mine, V1))
            await store.close()
            return mine

        try:
            start.wait()
            claimed[name] = asyncio.run(go())
        except BaseException as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"worker-{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    every = [i for ids in claimed.values() for i in ids]
    assert len(every) == len(set(every)), "an item was handed to two workers"
    assert set(every) == {i.id for i in items}
    # Everything is recorded now: a fifth worker finds nothing to do.
    assert _pending(_store(migrated), items, V1) == {}


def test_a_live_workers_claims_exclude_and_are_counted_as_claimed_elsewhere(migrated: Settings) -> None:
    items = [item(f"i{n}") for n in range(10)]

    async def go() -> None:
        live = _store(migrated, ttl=0.5)
        await live.open("live")
        assert len(await live.filter_unscored(items, V1)) == 10

        other = _store(migrated, ttl=0.5)
        await other.open("other")
        await asyncio.sleep(1.2)  # more than two lease lengths: the heartbeat keeps live's claims
        assert await other.filter_unscored(items[:5], V1) == []
        assert other.claimed_elsewhere == 5  # not "already scored": nothing is recorded
        await live.record(_entries("live", ["i5"], V1))
        await live.close()  # unrecorded claims go back at once
        got = await other.filter_unscored(items, V1)
        assert [p.item.id for p in got] == [i.id for i in items if i.id != "i5"]
        assert other.claimed_elsewhere == 5
        await other.close()

    asyncio.run(go())


_CLAIM_AND_HANG = """
import asyncio, sys
from pydantic import SecretStr
from shared.database.ledger import PostgresScoredItemsStore
from shared.evaluation.item import DatasetItem
from shared.evaluation.runner import PendingItem
from shared.settings import Settings

async def main():
    settings = Settings(database_url=SecretStr(sys.argv[1]), evalmon_db_schema=sys.argv[2])
    store = PostgresScoredItemsStore("mon", "src", settings=settings, claim_ttl_s=600)
    await store.open("doomed")
    got = await store.filter_unscored([DatasetItem(id=f"i{n}") for n in range(10)], {"m1": "v1", "m2": "v1"})
    print(len(got), flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def test_claims_of_a_killed_process_are_free_for_the_next_run_at_once(migrated: Settings) -> None:
    """SIGKILL mid-run: with a 10-minute lease, the next run still takes every item right away."""
    assert migrated.database_url is not None
    doomed = subprocess.Popen(
        [sys.executable, "-c", _CLAIM_AND_HANG, migrated.database_url.get_secret_value(), migrated.evalmon_db_schema],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert doomed.stdout is not None and doomed.stdout.readline().strip() == "10"
    finally:
        doomed.kill()
        doomed.wait(10)

    async def go() -> tuple[list[str], int]:
        store = _store(migrated, ttl=600)
        await store.open("next")
        got = await store.filter_unscored([item(f"i{n}") for n in range(10)], V1)
        await store.close()
        return [p.item.id for p in got], store.claimed_elsewhere

    taken, elsewhere = asyncio.run(go())
    assert taken == [f"i{n}" for n in range(10)] and elsewhere == 0
    assert _count(migrated, "run_leases") == 0 and _count(migrated, "item_claims") == 0


def test_claims_of_a_run_on_another_machine_are_taken_over_when_its_lease_expires(migrated: Settings) -> None:
    """No process table to look at: only the lease's expiry frees the claims."""
    assert migrated.database_url is not None
    with psycopg.connect(migrated.database_url.get_secret_value(), autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{migrated.evalmon_db_schema}"')
        conn.execute(
            "INSERT INTO run_leases (run_id, monitor, source_key, host, pid, process_ns, process_start, expires_at) "
            "VALUES ('remote', 'mon', 'src', 'elsewhere', 1, 'another-boot/pid:[1]', 1, now() + interval '1 second')"
        )
        conn.execute(
            "INSERT INTO item_claims (monitor, source_key, item_id, run_id) "
            "SELECT 'mon', 'src', 'i' || n, 'remote' FROM generate_series(0, 4) n"
        )
    items = [item(f"i{n}") for n in range(5)]

    async def go() -> tuple[list[str], list[str], int]:
        store = _store(migrated)
        await store.open("local")
        early = [p.item.id for p in await store.filter_unscored(items, V1)]
        await asyncio.sleep(1.2)
        late = [p.item.id for p in await store.filter_unscored(items, V1)]
        await store.close()
        return early, late, store.claimed_elsewhere

    early, late, elsewhere = asyncio.run(go())
    assert early == [] and late == [i.id for i in items] and elsewhere == 5


def _count(settings: Settings, table: str) -> int:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{settings.evalmon_db_schema}".{table}').fetchone()
    assert row is not None
    return int(row[0])


def test_release_gives_items_back_and_record_drops_claims(migrated: Settings) -> None:
    items = [item(f"i{n}") for n in range(6)]

    async def go() -> None:
        a, b = _store(migrated), _store(migrated)
        await a.open("a")
        await b.open("b")
        assert len(await a.filter_unscored(items, V1)) == 6
        await a.release(items[:2])
        assert [p.item.id for p in await b.filter_unscored(items, V1)] == ["i0", "i1"]
        await a.record(_entries("a", ["i2", "i3"], V1))
        await a.close()
        assert [p.item.id for p in await b.filter_unscored(items, V1)] == ["i0", "i1", "i4", "i5"]
        await b.close()

    asyncio.run(go())
    assert migrated.database_url is not None
    with psycopg.connect(migrated.database_url.get_secret_value()) as conn:
        left = conn.execute(f'SELECT count(*) FROM "{migrated.evalmon_db_schema}".item_claims').fetchone()
    assert left == (0,)


def test_recheck_after_claim_sees_work_recorded_meanwhile(migrated: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker B reads the ledger, worker A records and lets go, then B claims: B must not rescore."""
    items = [item("x")]

    async def go() -> list[str]:
        a, b = _store(migrated), _store(migrated)
        await a.open("a")
        await b.open("b")
        assert len(await a.filter_unscored(items, V1)) == 1
        real = PostgresScoredItemsStore._missing
        calls = {"n": 0}

        async def needed_then_a_records(self: PostgresScoredItemsStore, *args: object) -> dict[str, set[str]]:
            result = await real(self, *args)  # type: ignore[arg-type]
            calls["n"] += 1
            if self is b and calls["n"] == 1:
                await a.record(_entries("a", ["x"], V1))  # commits between B's read and B's claim
            return result

        monkeypatch.setattr(PostgresScoredItemsStore, "_missing", needed_then_a_records)
        got = await b.filter_unscored(items, V1)
        await a.close()
        await b.close()
        return [p.item.id for p in got]

    assert asyncio.run(go()) == []


def test_heartbeat_is_cheap_to_stop(migrated: Settings) -> None:
    async def go() -> float:
        store = _store(migrated, ttl=30)
        await store.open("r")
        started = time.perf_counter()
        await store.close()
        return time.perf_counter() - started

    assert asyncio.run(go()) < 2.0


def test_a_blocked_event_loop_does_not_let_the_lease_lapse(migrated: Settings) -> None:
    """A long CPU-bound stretch in the worker's loop must not hand its claims to someone else."""
    items = [item(f"i{n}") for n in range(4)]

    async def go() -> int:
        busy = _store(migrated, ttl=0.5)
        await busy.open("busy")
        assert len(await busy.filter_unscored(items, V1)) == 4
        time.sleep(1.5)  # blocks this event loop for three lease lengths; the heartbeat is a thread
        other = _store(migrated, ttl=0.5)
        await other.open("other")
        taken = await other.filter_unscored(items, V1)
        await other.close()
        await busy.close()
        return len(taken)

    assert asyncio.run(go()) == 0
