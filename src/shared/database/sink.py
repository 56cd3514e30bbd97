"""The Postgres sink (`publish.postgres: true`): one transaction per run, bulk upserts.

DATAFLOW (publish):
    EvaluationResult rows -> dedupe by (item id, metric name) (last row wins) -> clean values (values.py)
    -> BEGIN -> upsert evaluation_runs row
             -> COPY items   into a temp table -> INSERT ... ON CONFLICT (source_key, item_id) DO UPDATE
             -> which results already have a row (one index lookup by item id)?
                none yet:  COPY straight into evaluation_results (the common case, and the fastest)
                redone:    COPY into a temp table -> INSERT ... ON CONFLICT (monitor, source_key,
                           item_id, metric_name, metric_version) DO UPDATE (run_id = this run)
    -> COMMIT -> SinkReport(stored = every (item id, metric name) written)

One row per (monitor, source_key, item, metric, metric version), whatever was killed when: a redo
(a run killed after this commit but before its ledger write, an error retried, a failed Langfuse
publish) overwrites the row, and `run_id` names the run that wrote it last; the runs themselves
stay in evaluation_runs. Any failure rolls the whole transaction back and the report carries the
(redacted) error with an empty `stored`, so the monitor records nothing in the ledger for this run.
A transient failure (lost connection, deadlock, a concurrent writer of the same key) retries the
whole transaction, which is safe because it is all-or-nothing.

Run rows: `check` takes the run's lease (lease.py) and marks this monitor's `running` rows whose
run is no longer live as `aborted` (their process died before `finish`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Dumper
from psycopg.copy import AsyncCopy, AsyncWriter
from psycopg.pq import Format
from psycopg_pool import AsyncConnectionPool

from shared.database import lease as leases
from shared.database.connection import (
    database_url,
    describe_error,
    is_row_error,
    is_transient,
    open_pool,
    schema_name,
    transaction,
)
from shared.database.migrate import pending_async
from shared.database.values import NUL, clean_text, to_json, to_json_bytes
from shared.errors import ConfigError, SinkError
from shared.evaluation.columns import ITEMS_TABLE, RESULTS_TABLE
from shared.evaluation.item import DatasetItem
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import PairKey, Sink, SinkReport, register_sink
from shared.retry import async_retrying
from shared.settings import Settings

INT4_MAX = 2**31 - 1  # the token columns are `integer`
log = logging.getLogger(__name__)

# The columns written, in COPY order, and their binary COPY types: from the one definition (columns.py).
ITEM_COLUMNS = tuple(c.db for c in ITEMS_TABLE)
RESULT_COLUMNS = tuple(c.db for c in RESULTS_TABLE)
ITEM_TYPES = [c.pg_type for c in ITEMS_TABLE]
RESULT_TYPES = [c.pg_type for c in RESULTS_TABLE]
# Binary COPY: psycopg formats each row in C (about 3x faster than text COPY for wide rows).
_BINARY = "(FORMAT BINARY)"


class _JsonbCopyDumper(Dumper):
    """Binary jsonb for COPY after `set_types`: version byte + `to_json_bytes` (one call per value)."""

    format = Format.BINARY
    oid = 3802  # jsonb

    def dump(self, obj: Any) -> Buffer | None:
        return b"\x01" + to_json_bytes(obj)


# Item fields a metric reads besides the text columns; stored together as `inputs` jsonb.
INPUT_FIELDS = frozenset(
    {"retrieved_content", "additional_input", "additional_output", "conversation", "tools_called", "latency"}
)

_ITEM_KEY = ("source_key", "item_id")
_RESULT_KEY = ("monitor", "source_key", "item_id", "metric_name", "metric_version")

_UPSERT_RUN = """
INSERT INTO evaluation_runs AS r
    (run_id, monitor, source_key, window_since, window_until, status, config_hash, evalmon_version,
     counts, started_at, published_at)
VALUES (%s, %s, %s, %s, %s, 'running', %s, %s, %s::jsonb, %s, now())
ON CONFLICT (run_id) DO UPDATE SET
    counts = r.counts || EXCLUDED.counts,
    published_at = EXCLUDED.published_at
"""

_FINISH_RUN = """
INSERT INTO evaluation_runs AS r
    (run_id, monitor, source_key, window_since, window_until, status, config_hash, evalmon_version,
     counts, summary, started_at, finished_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, now())
ON CONFLICT (run_id) DO UPDATE SET
    status = EXCLUDED.status,
    counts = r.counts || EXCLUDED.counts,
    summary = EXCLUDED.summary,
    finished_at = EXCLUDED.finished_at
"""


# Results of this run's items that already have a row (any version; the caller matches versions).
_EXISTING_RESULTS = """
SELECT item_id, metric_name, metric_version FROM evaluation_results
WHERE monitor = %s AND source_key = %s AND item_id = ANY(%s::text[])
"""

# Runs of this monitor left `running` by a process that died before finishing them.
_ABORT_DEAD_RUNS = """
UPDATE evaluation_runs r SET status = 'aborted', finished_at = now()
WHERE r.monitor = %s AND r.status = 'running' AND r.run_id <> %s AND NOT evalmon_run_is_live(r.run_id)
RETURNING r.run_id
"""


_ABORT_RUN = (
    "UPDATE evaluation_runs SET status = 'aborted', finished_at = now() WHERE run_id = %s AND status = 'running'"
)


def _upsert_sql(table: str, temp: str, columns: Sequence[str], key: Sequence[str], extra_set: str = "") -> str:
    cols = ", ".join(columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {temp} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}{extra_set}"
    )


_UPSERT_ITEMS = _upsert_sql("evaluation_items", "_evalmon_items", ITEM_COLUMNS, _ITEM_KEY, ", updated_at = now()")
_UPSERT_RESULTS = _upsert_sql("evaluation_results", "_evalmon_results", RESULT_COLUMNS, _RESULT_KEY)


# `inputs` in DatasetItem field order; nested models (conversation, tools_called) need pydantic's
# exclude_none, anything else is taken from the item's one JSON dump (see `item_record`).
_INPUT_ORDER = tuple(name for name in DatasetItem.model_fields if name in INPUT_FIELDS)


def item_record(source_key: str, item: DatasetItem) -> tuple[Any, ...]:
    """One evaluation_items row (ITEM_COLUMNS order), cleaned for Postgres.

    One `model_dump` per item feeds both the content hash (the exact payload and encoding of
    `DatasetItem.content_hash`) and `inputs`: together they were most of the per-item cost.
    """
    dump = item.model_dump(mode="json")
    dump.pop("metadata")
    if item.conversation is None and item.tools_called is None:
        # exclude_none only drops None fields of models, never None values inside dicts/lists.
        inputs = {name: dump[name] for name in _INPUT_ORDER if dump[name] is not None}
    else:
        inputs = item.model_dump(mode="json", include=set(INPUT_FIELDS), exclude_none=True)
    blob = json.dumps(dump, sort_keys=True, ensure_ascii=False, default=str)
    content_hash = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]  # == item.content_hash()
    return (
        clean_text(source_key),
        clean_text(item.id),
        clean_text(item.trace_id),
        clean_text(item.observation_id),
        clean_text(item.session_id),
        item.source_timestamp,
        clean_text(item.query),
        clean_text(item.actual_output),
        clean_text(item.expected_output),
        content_hash,
        inputs,  # jsonb: serialised by `to_json_bytes` (registered on the connection), in C-speed binary COPY
        item.metadata,
    )


def result_record(run: RunContext, row: ResultRow, created_at: datetime) -> tuple[Any, ...]:
    """One evaluation_results row (RESULT_COLUMNS order), cleaned: NaN/inf -> NULL, NUL -> U+FFFD."""
    return next(result_records(run, [row], created_at))


def result_records(run: RunContext, rows: Sequence[ResultRow], created_at: datetime) -> Iterator[tuple[Any, ...]]:
    """evaluation_results rows for a run; per-run, per-item and per-metric values are cleaned once."""
    run_id, source_key, monitor = clean_text(run.run_id), clean_text(run.source_key), clean_text(run.monitor)
    items: dict[str, tuple[str | None, datetime | None]] = {}
    metrics: dict[tuple[str, str, str], tuple[str | None, str | None, str | None]] = {}
    for row in rows:
        item = row.item
        item_key = items.get(item.id)
        if item_key is None:
            item_key = items[item.id] = (clean_text(item.id), item.source_timestamp)
        metric_id = (row.metric_name, row.metric_key, row.metric_version)
        metric = metrics.get(metric_id)
        if metric is None:
            metric = metrics[metric_id] = (clean_text(metric_id[0]), clean_text(metric_id[1]), clean_text(metric_id[2]))
        r = row.result
        # Inline checks (this loop runs once per result row): `x - x == 0` is False exactly for
        # NaN and +-inf; text is rewritten only when it holds a NUL (see values.py).
        score, threshold, cost, latency = r.score, r.threshold, r.cost_usd, r.latency_s
        label, explanation, error = r.label, r.explanation, r.error
        model, prompt_name, prompt_version = r.model, r.prompt_name, r.prompt_version
        yield (
            run_id,
            monitor,
            source_key,
            item_key[0],
            metric[0],
            metric[1],
            metric[2],
            score if score is None or score - score == 0 else None,
            r.passed,
            threshold if threshold is None or threshold - threshold == 0 else None,
            label if label is None or NUL not in label else clean_text(label),
            r.status,  # a StrEnum: already the str value
            explanation if NUL not in explanation else clean_text(explanation),
            error if error is None or NUL not in error else clean_text(error),
            r.signals,
            cost if cost - cost == 0 else None,
            latency if latency - latency == 0 else None,
            model if model is None or NUL not in model else clean_text(model),
            prompt_name if prompt_name is None or NUL not in prompt_name else clean_text(prompt_name),
            prompt_version if prompt_version is None or NUL not in prompt_version else clean_text(prompt_version),
            min(r.input_tokens, INT4_MAX),  # binary COPY would wrap a larger count silently
            min(r.output_tokens, INT4_MAX),
            item_key[1],
            created_at,
        )


class _MemoryWriter(AsyncWriter):
    """Collects binary COPY data in memory (psycopg's documented custom-writer hook)."""

    def __init__(self) -> None:
        self.chunks: list[Buffer] = []

    async def write(self, data: Buffer) -> None:
        self.chunks.append(data)


_FORMAT_BATCH = 500


async def _format_while_pending(
    conn: psycopg.AsyncConnection[Any], records: Iterator[tuple[Any, ...]], pending: asyncio.Future[Any]
) -> list[Buffer]:
    """Format result rows into a complete binary COPY stream until `pending` completes.

    Yields to the event loop between batches so `pending` (a query on the same connection)
    is noticed as soon as the server answers. Returns no chunks when nothing was formatted.
    """
    writer = _MemoryWriter()
    n = 0
    # Its own cursor (never sent a query): the busy cursor's transformer is in use by `pending`.
    async with conn.cursor() as fmt_cur, AsyncCopy(fmt_cur, binary=True, writer=writer) as copy:
        copy.set_types(RESULT_TYPES)
        await asyncio.sleep(0)  # let `pending` send its query first
        while not pending.done():
            batch = list(islice(records, _FORMAT_BATCH))
            for record in batch:
                await copy.write_row(record)
            n += len(batch)
            if len(batch) < _FORMAT_BATCH:
                break
            await asyncio.sleep(0)
    return writer.chunks if n else []


def _counts(rows: Sequence[ResultRow]) -> dict[str, int]:
    by_status = Counter(row.result.status for row in rows)
    counts: dict[str, int] = {"results": len(rows)}
    for status, n in by_status.items():
        counts[f"results_{status.value}"] = n
    return counts


@register_sink("postgres")
class PostgresSink(Sink):
    """Publishes a run's results to Postgres/Neon; see the module docstring for the data flow."""

    name = "postgres"

    def __init__(self, settings: Settings, *, attempts: int = 3) -> None:
        self.settings = settings
        self.schema = schema_name(settings)
        self.attempts = attempts
        self._pool: AsyncConnectionPool | None = None
        self._lease: leases.RunLease | None = None
        self._unfinished: RunContext | None = None  # its row says `running` until finish_run
        database_url(settings)  # fail now with a ConfigError when DATABASE_URL is missing

    async def _get_pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            self._pool = await open_pool(self.settings, min_size=1, max_size=2)
        return self._pool

    async def check(self, run: RunContext) -> None:
        """Reachable and migrated (otherwise stop before any work); take the run's lease, abort dead runs."""
        pool = await self._get_pool()
        try:
            async with transaction(pool, self.schema) as conn:
                todo = await pending_async(conn)
        except psycopg.Error as exc:
            raise SinkError(f"Postgres check failed: {describe_error(exc, self.settings)}") from None
        if todo:
            names = ", ".join(m.label for m in todo)
            raise ConfigError(
                f"the database schema '{self.schema}' is not up to date (pending: {names}); run `evalmon db migrate`",
                field="publish.postgres",
            )
        try:
            await self._hold_lease(run)
            async with transaction(pool, self.schema) as conn:
                await leases.reap(conn, clean_text(run.monitor) or run.monitor, keep=run.run_id)
                cur = await conn.execute(_ABORT_DEAD_RUNS, [clean_text(run.monitor), clean_text(run.run_id)])
                aborted = [str(row[0]) for row in await cur.fetchall()]
        except psycopg.Error as exc:
            raise SinkError(f"Postgres check failed: {describe_error(exc, self.settings)}") from None
        if aborted:
            log.warning(
                "postgres: marked %d run(s) of %s left running by a dead process as aborted: %s",
                len(aborted),
                run.monitor,
                ", ".join(aborted),
            )

    async def _hold_lease(self, run: RunContext) -> None:
        """Hold the run's lease while its row may say `running` (until `aclose`)."""
        if self._lease is None:
            self._lease = await leases.hold(
                self.settings,
                run_id=clean_text(run.run_id) or run.run_id,
                monitor=clean_text(run.monitor) or run.monitor,
                source_key=clean_text(run.source_key) or run.source_key,
                ttl_s=run.config.dedup.claim_ttl_s,
            )

    async def publish(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        by_key = _dedupe(results.rows)
        rows = list(by_key.values())
        stored: set[PairKey] = set(by_key)
        try:
            await self._hold_lease(run)
            async for attempt in async_retrying(self.attempts, retry_on=_worth_retrying):
                with attempt:
                    await self._write(run, rows)
            self._unfinished = run
        except Exception as exc:
            message = describe_error(exc, self.settings)
            log.warning("postgres: publishing run %s failed, rolled back: %s", run.run_id, message)
            return SinkReport(sink=self.name, error=message, details={"rows": len(rows)}, row_error=is_row_error(exc))
        return SinkReport(sink=self.name, stored=stored, details={"rows": len(rows), "schema": self.schema})

    async def _write(self, run: RunContext, rows: Sequence[ResultRow]) -> None:
        pool = await self._get_pool()
        created_at = datetime.now(UTC)
        items: dict[str, DatasetItem] = {}
        for row in rows:
            items[row.item.id] = row.item
        async with transaction(pool, self.schema) as conn:
            await conn.execute(
                _UPSERT_RUN,
                [
                    clean_text(run.run_id),
                    clean_text(run.monitor),
                    clean_text(run.source_key),
                    run.window.since,
                    run.window.until,
                    run.config_hash,
                    run.evalmon_version,
                    to_json(_counts(rows)),
                    run.started_at,
                ],
            )
            conn.adapters.register_dumper(None, _JsonbCopyDumper)  # jsonb in COPY: NaN -> null, NUL -> U+FFFD
            if not rows:
                return
            await conn.execute(
                "CREATE TEMP TABLE _evalmon_items (LIKE evaluation_items INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            async with conn.cursor() as cur:
                async with cur.copy(f"COPY _evalmon_items ({', '.join(ITEM_COLUMNS)}) FROM STDIN {_BINARY}") as copy:
                    copy.set_types(ITEM_TYPES)
                    for item in items.values():
                        await copy.write_row(item_record(run.source_key, item))
                fresh, redone = await _split_by_existing(cur, run, rows)
                # Rows with no row yet go straight into the table (COPY: the fastest bulk insert);
                # only redone rows take the temp-table upsert.
                records = result_records(run, fresh, created_at)
                # While the server runs the items upsert, format result rows into memory (binary
                # COPY data) instead of idling: only as many as fit in that time, so memory stays bounded.
                upsert = asyncio.ensure_future(cur.execute(_UPSERT_ITEMS))
                try:
                    early = await _format_while_pending(conn, records, upsert)
                finally:
                    await upsert  # always awaited: its error aborts the transaction
                copy_sql = f"COPY evaluation_results ({', '.join(RESULT_COLUMNS)}) FROM STDIN {_BINARY}"
                if early:
                    async with cur.copy(copy_sql) as copy:
                        for chunk in early:
                            await copy.write(chunk)
                    early.clear()
                async with cur.copy(copy_sql) as copy:
                    copy.set_types(RESULT_TYPES)
                    for record in records:
                        await copy.write_row(record)
                if redone:
                    await cur.execute(
                        "CREATE TEMP TABLE _evalmon_results (LIKE evaluation_results INCLUDING DEFAULTS) ON COMMIT DROP"
                    )
                    async with cur.copy(
                        f"COPY _evalmon_results ({', '.join(RESULT_COLUMNS)}) FROM STDIN {_BINARY}"
                    ) as copy:
                        copy.set_types(RESULT_TYPES)
                        for record in result_records(run, redone, created_at):
                            await copy.write_row(record)
                    await cur.execute(_UPSERT_RESULTS)

    async def finish_run(self, run: RunContext, summary: dict[str, Any]) -> bool:
        """Best effort: set the run's final status, counts and summary (separate transaction).

        Returns False (and logs a warning) when it could not; results already published stay.
        """
        counts = summary.get("counts")
        try:
            pool = await self._get_pool()
            async with transaction(pool, self.schema) as conn:
                await conn.execute(
                    _FINISH_RUN,
                    [
                        clean_text(run.run_id),
                        clean_text(run.monitor),
                        clean_text(run.source_key),
                        run.window.since,
                        run.window.until,
                        clean_text(summary.get("status") or "finished"),
                        run.config_hash,
                        run.evalmon_version,
                        to_json(counts if isinstance(counts, dict) else {}),
                        to_json(summary),
                        run.started_at,
                    ],
                )
        except Exception as exc:
            log.warning("postgres: could not finish run %s: %s", run.run_id, describe_error(exc, self.settings))
            return False
        self._unfinished = None
        return True

    async def finish(self, run: RunContext, summary: dict[str, object]) -> None:
        """The monitor's end-of-run hook (before `aclose`): the run row's final status and counts."""
        await self.finish_run(run, dict(summary))

    async def aclose(self) -> None:
        """Close; a run published but never finished (the monitor failed in between) is marked aborted."""
        if self._unfinished is not None and self._pool is not None:
            run, self._unfinished = self._unfinished, None
            try:
                async with transaction(self._pool, self.schema) as conn:
                    await conn.execute(_ABORT_RUN, [clean_text(run.run_id)])
            except psycopg.Error as exc:  # the next run of the monitor marks it
                log.warning(
                    "postgres: could not mark run %s aborted: %s", run.run_id, describe_error(exc, self.settings)
                )
        if self._lease is not None:
            lease, self._lease = self._lease, None
            await leases.let_go(lease)
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _worth_retrying(exc: BaseException) -> bool:
    """Transient errors, and a key another writer inserted after our lookup (the retry upserts it)."""
    return is_transient(exc) or isinstance(exc, psycopg.errors.UniqueViolation)


def _dedupe(rows: Sequence[ResultRow]) -> dict[PairKey, ResultRow]:
    """One row per (item id, metric name), last wins: a key must not appear twice in one upsert."""
    return {(row.item.id, row.metric_name): row for row in rows}


async def _split_by_existing(
    cur: psycopg.AsyncCursor[Any], run: RunContext, rows: Sequence[ResultRow]
) -> tuple[list[ResultRow], list[ResultRow]]:
    """(rows with no row in evaluation_results yet, rows that already have one at their version)."""
    item_ids = list({clean_text(row.item.id) for row in rows})
    await cur.execute(_EXISTING_RESULTS, [clean_text(run.monitor), clean_text(run.source_key), item_ids])
    existing = {(str(i), str(m), str(v)) for i, m, v in await cur.fetchall()}
    if not existing:
        return list(rows), []
    fresh: list[ResultRow] = []
    redone: list[ResultRow] = []
    for row in rows:
        key = (clean_text(row.item.id), clean_text(row.metric_name), clean_text(row.metric_version))
        (redone if key in existing else fresh).append(row)
    return fresh, redone
