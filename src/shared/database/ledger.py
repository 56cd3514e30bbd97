"""`dedup.store: postgres`: the ledger in Postgres, with claims so several workers can share a monitor.

Semantics are the CSV ledger's (architecture.md section 3): an item needs a metric when the ledger has no
row for (monitor, source_key, item_id, metric_name) at the metric's current version. On top of
that, several workers running the same monitor on the same window coordinate through `item_claims`
(architecture.md section 9). A claim is held by a run, and a run is live while its lease in `run_leases`
is (lease.py: renewed every few seconds by a thread; deleted at once by the next worker on the same
machine when the process is gone). A dead worker's claims are therefore free for the next run.

DATAFLOW (filter_unscored, one transaction per page of candidates):
    candidate ids x configured (metric, version) -> anti-join against the ledger's primary key
       (only the candidates are looked up; only pairs still missing come back)
    -> ids still needing a metric, sorted (a fixed lock order: concurrent workers cannot deadlock)
    -> INSERT claims ... ON CONFLICT DO UPDATE ... WHERE the claim is ours or its run is not live
       RETURNING the ids we now hold (an item another live worker holds is not returned: the
       insert waits for that worker's transaction and then finds its live lease)
    -> re-read the ledger for the ids we claimed (another worker may have recorded one between
       our first read and our claim; READ COMMITTED gives each statement a fresh snapshot)
       and drop claims that turned out to need nothing
    -> PendingItem(item, metrics still needed) for the ids we hold
    Items held by another run: reap dead leases once (lease.reap) and claim again; what is still
    held elsewhere is counted in `claimed_elsewhere`, not as already scored.

`record` writes ledger rows and drops this run's claims on those items in one transaction;
`release` and `close` drop claims this run took but did not record.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import cast

import psycopg
from psycopg_pool import AsyncConnectionPool

from shared.database import lease as leases
from shared.database.connection import database_url, describe_error, open_pool, schema_name, transaction
from shared.database.migrate import pending_async
from shared.database.values import clean_text
from shared.errors import ConfigError, SinkError
from shared.evaluation.item import DatasetItem
from shared.evaluation.runner import PendingItem
from shared.monitoring.ledger.base import LedgerEntry, ScoredItemsStore
from shared.settings import Settings

log = logging.getLogger(__name__)

# (candidate, metric) pairs with no ledger row at the metric's current version: an anti-join of
# the candidates against the primary key, so the steady state (everything already scored) sends
# nothing back.
# Candidate ids go as a binary array (`%b`): thousands of ids per page, and the text form costs a
# quoting pass on the client and an array-literal parse on the server, twice the time.
_MISSING = """
SELECT c.item_id, m.metric_name
FROM unnest(%(ids)b::text[]) AS c(item_id)
CROSS JOIN unnest(%(names)s::text[], %(versions)s::text[]) AS m(metric_name, metric_version)
WHERE NOT EXISTS (
    SELECT 1 FROM scored_items s
    WHERE s.monitor = %(monitor)s AND s.source_key = %(source_key)s AND s.item_id = c.item_id
      AND s.metric_name = m.metric_name AND s.metric_version = m.metric_version
)
"""

# The default cost model (spinning disks) prefers a full scan of a large ledger over thousands of
# primary-key probes; on SSD/Neon storage the probes win. Transaction-local, like the search_path.
# A claim never waits long for another worker's row lock: a stuck session surfaces as an error.
LOCKS = {"lock_timeout": "30s"}
LOOKUP_SETTINGS = {"random_page_cost": "1.1", **LOCKS}

# `evalmon_run_is_live` (migration 0002) reads the lease with a fresh snapshot: a claim that
# waited for another worker's transaction sees that worker's lease even if it is newer than
# this statement.
_CLAIM = """
INSERT INTO item_claims AS c (monitor, source_key, item_id, run_id, claimed_at)
SELECT %(monitor)s, %(source_key)s, ids.item_id, %(run_id)s, now()
FROM unnest(%(ids)b::text[]) AS ids(item_id)
ON CONFLICT (monitor, source_key, item_id) DO UPDATE
    SET run_id = EXCLUDED.run_id, claimed_at = EXCLUDED.claimed_at
    WHERE c.run_id = EXCLUDED.run_id OR NOT evalmon_run_is_live(c.run_id)
RETURNING c.item_id
"""

_UNCLAIM = """
DELETE FROM item_claims WHERE monitor = %s AND source_key = %s AND run_id = %s AND item_id = ANY(%s)
"""

_UNCLAIM_ALL = "DELETE FROM item_claims WHERE monitor = %s AND source_key = %s AND run_id = %s"

_RECORD = """
INSERT INTO scored_items AS s (monitor, source_key, item_id, metric_name, metric_version, run_id, recorded_at)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[])
ON CONFLICT (monitor, source_key, item_id, metric_name) DO UPDATE
    SET metric_version = EXCLUDED.metric_version, run_id = EXCLUDED.run_id, recorded_at = EXCLUDED.recorded_at
    WHERE s.metric_version <> EXCLUDED.metric_version
RETURNING 1
"""


class PostgresScoredItemsStore(ScoredItemsStore):
    """The ledger and claim table of one monitor over one source, in Postgres."""

    def __init__(self, monitor: str, source_key: str, *, settings: Settings, claim_ttl_s: float = 30.0) -> None:
        super().__init__(monitor, source_key)
        database_url(settings)  # ConfigError now when DATABASE_URL is missing
        if claim_ttl_s <= 0:
            raise ConfigError("claim_ttl_s must be positive", field="dedup.claim_ttl_s")
        self.settings = settings
        self.schema = schema_name(settings)
        self.claim_ttl_s = float(claim_ttl_s)
        self.run_id: str | None = None
        self._monitor = clean_text(monitor) or monitor
        self._source_key = clean_text(source_key) or source_key
        self._pool: AsyncConnectionPool | None = None
        self._lease: leases.RunLease | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def open(self, run_id: str) -> None:
        """Connect, check the schema is migrated, take this run's lease and free dead runs' claims."""
        self.run_id = run_id
        pool = await self._get_pool()
        try:
            async with transaction(pool, self.schema, **LOCKS) as conn:
                todo = await pending_async(conn)
        except psycopg.Error as exc:
            await self.close()
            raise SinkError(f"Postgres ledger check failed: {describe_error(exc, self.settings)}") from None
        if todo:
            await self.close()
            raise ConfigError(
                f"the database schema '{self.schema}' is not up to date "
                f"(pending: {', '.join(m.label for m in todo)}); run `evalmon db migrate`",
                field="dedup.store",
            )
        try:
            await self._hold_lease()
            await self._reap()
        except psycopg.Error as exc:
            await self.close()
            raise SinkError(f"Postgres ledger: cannot take a run lease: {describe_error(exc, self.settings)}") from None

    async def close(self) -> None:
        """Drop every claim this run still holds (unrecorded work goes back), then the lease."""
        try:
            if self._pool is not None and self.run_id is not None:
                async with transaction(self._pool, self.schema, **LOCKS) as conn:
                    await conn.execute(_UNCLAIM_ALL, [self._monitor, self._source_key, self.run_id])
        except psycopg.Error as exc:  # the claims die with the lease; say so and move on
            log.warning("postgres ledger: could not release claims: %s", describe_error(exc, self.settings))
        finally:
            if self._lease is not None:
                lease, self._lease = self._lease, None
                await leases.let_go(lease)
            if self._pool is not None:
                await self._pool.close()
                self._pool = None

    async def _get_pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            self._pool = await open_pool(self.settings, min_size=1, max_size=2)
        return self._pool

    def _run(self) -> str:
        if self.run_id is None:  # used without open(): a private claim session
            self.run_id = f"adhoc-{uuid.uuid4().hex}"
        return self.run_id

    async def _hold_lease(self) -> None:
        if self._lease is None:
            self._lease = await leases.hold(
                self.settings,
                run_id=self._run(),
                monitor=self._monitor,
                source_key=self._source_key,
                ttl_s=self.claim_ttl_s,
            )

    async def _reap(self) -> list[str]:
        """Free the claims of this monitor's dead runs (see lease.reap); returns their run ids."""
        pool = await self._get_pool()
        async with transaction(pool, self.schema, **LOCKS) as conn:
            dead = await leases.reap(conn, self._monitor, keep=self.run_id)
        if dead:
            log.warning("postgres ledger: freed the claims of %d dead run(s): %s", len(dead), ", ".join(dead))
        return dead

    # -- the ledger contract ----------------------------------------------------------------
    async def filter_unscored(self, items: Sequence[DatasetItem], versions: Mapping[str, str]) -> list[PendingItem]:
        """Items (first occurrence of each id) with metrics still needed, claimed for this run."""
        by_id: dict[str, DatasetItem] = {}
        for item in items:
            by_id.setdefault(clean_text(item.id) or item.id, item)
        if not by_id or not versions:
            return []
        await self._hold_lease()
        needed, held = await self._claim(sorted(by_id), versions)
        if needed.keys() - held.keys() and await self._reap():
            # Some were held by runs found dead just now: take those too.
            retry_needed, retry_held = await self._claim(sorted(needed.keys() - held.keys()), versions)
            held.update(retry_held)
            needed = {**{i: m for i, m in needed.items() if i not in retry_needed}, **retry_needed}
        elsewhere = needed.keys() - held.keys()
        self.claimed_elsewhere += len(elsewhere)
        return [PendingItem(item, frozenset(held[i])) for i, item in by_id.items() if i in held]

    async def _claim(
        self, ids: list[str], versions: Mapping[str, str]
    ) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """(ids needing a metric at first look, ids claimed by this run that still need one -> metrics)."""
        names = sorted(versions)
        pool = await self._get_pool()
        async with transaction(pool, self.schema, **LOOKUP_SETTINGS) as conn:
            needed = await self._missing(conn, ids, versions, names)
            if not needed:
                return {}, {}
            cur = await conn.execute(
                _CLAIM,
                {
                    "monitor": self._monitor,
                    "source_key": self._source_key,
                    "run_id": self._run(),
                    "ids": sorted(needed),
                },
            )
            claimed = sorted(str(row[0]) for row in await cur.fetchall())
            if not claimed:
                return needed, {}
            still = await self._missing(conn, claimed, versions, names)
            done = [i for i in claimed if i not in still]
            if done:
                await conn.execute(_UNCLAIM, [self._monitor, self._source_key, self._run(), done])
        # Recorded by another worker meanwhile: already scored, so neither needed nor held.
        for i in done:
            needed.pop(i, None)
        return needed, still

    async def _missing(
        self,
        conn: psycopg.AsyncConnection[tuple[object, ...]],
        ids: list[str],
        versions: Mapping[str, str],
        names: list[str],
    ) -> dict[str, set[str]]:
        """Candidate id -> metric names without a ledger row at the current version (ids needing none are absent)."""
        params = {
            "ids": ids,
            "names": names,
            "versions": [versions[n] for n in names],
            "monitor": self._monitor,
            "source_key": self._source_key,
        }
        async with conn.cursor(binary=True) as cur:
            await cur.execute(_MISSING, params)
            rows = await cur.fetchall()
        missing: dict[str, set[str]] = {}
        for item_id, metric_name in cast("list[tuple[str, str]]", rows):  # text columns load as str
            known = missing.get(item_id)
            if known is None:
                missing[item_id] = {metric_name}
            else:
                known.add(metric_name)
        return missing

    async def record(self, entries: Sequence[LedgerEntry]) -> int:
        """Write ledger rows (idempotent) and drop this run's claims on those items; returns new rows."""
        if not entries:
            return 0
        latest: dict[tuple[str, str, str, str], LedgerEntry] = {}
        for e in entries:
            key = (
                clean_text(e.monitor) or "",
                clean_text(e.source_key) or "",
                clean_text(e.item_id) or "",
                e.metric_name,
            )
            latest[key] = e
        keys = list(latest)
        columns = [
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [clean_text(k[3]) for k in keys],
            [latest[k].metric_version for k in keys],
            [latest[k].run_id for k in keys],
            [latest[k].recorded_at for k in keys],
        ]
        item_ids = sorted({k[2] for k in keys if k[0] == self._monitor and k[1] == self._source_key})
        pool = await self._get_pool()
        async with transaction(pool, self.schema, **LOCKS) as conn:
            cur = await conn.execute(_RECORD, columns)
            new = len(await cur.fetchall())
            if item_ids:
                await conn.execute(_UNCLAIM, [self._monitor, self._source_key, self._run(), item_ids])
        return new

    async def release(self, items: Sequence[DatasetItem]) -> None:
        """Give back claims on items this run took but will not score (e.g. not sampled)."""
        ids = sorted({clean_text(item.id) or item.id for item in items})
        if not ids or self._pool is None:
            return
        async with transaction(self._pool, self.schema, **LOCKS) as conn:
            await conn.execute(_UNCLAIM, [self._monitor, self._source_key, self._run(), ids])
