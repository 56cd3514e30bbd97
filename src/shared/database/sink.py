"""The Postgres sink (`publish.postgres: true`): one transaction per run, bulk upserts.

DATAFLOW (publish):
    EvaluationResult rows -> dedupe by natural key (last row wins) -> clean values (values.py)
    -> BEGIN -> upsert evaluation_runs row
             -> COPY items   into a temp table -> INSERT ... ON CONFLICT (source_key, item_id) DO UPDATE
             -> COPY results into a temp table -> INSERT ... ON CONFLICT (run_id, source_key, item_id,
                                                                           metric_name) DO UPDATE
    -> COMMIT -> SinkReport(stored = every (item id, metric name) written)

Any failure rolls the whole transaction back and the report carries the (redacted) error with an
empty `stored`, so the monitor records nothing in the ledger for this run. Republishing the same
run overwrites its rows instead of adding new ones. A transient failure (lost connection,
deadlock) retries the whole transaction, which is safe because it is all-or-nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from shared.database.connection import database_url, describe_error, is_transient, open_pool, schema_name, transaction
from shared.database.migrate import pending_async
from shared.database.values import clean_float, clean_text, to_json
from shared.errors import ConfigError, SinkError
from shared.evaluation.item import DatasetItem
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import PairKey, Sink, SinkReport
from shared.retry import async_retrying
from shared.settings import Settings

log = logging.getLogger(__name__)

ITEM_COLUMNS = (
    "source_key",
    "item_id",
    "trace_id",
    "observation_id",
    "session_id",
    "source_timestamp",
    "query",
    "actual_output",
    "expected_output",
    "content_hash",
    "inputs",
    "metadata",
)
RESULT_COLUMNS = (
    "run_id",
    "source_key",
    "item_id",
    "metric_name",
    "monitor",
    "metric_key",
    "metric_version",
    "status",
    "score",
    "passed",
    "threshold",
    "label",
    "explanation",
    "signals",
    "error",
    "cost_usd",
    "latency_s",
    "model",
    "prompt_name",
    "prompt_version",
    "input_tokens",
    "output_tokens",
    "source_timestamp",
    "created_at",
)
# Item fields a metric reads besides the text columns; stored together as `inputs` jsonb.
INPUT_FIELDS = frozenset(
    {"retrieved_content", "additional_input", "additional_output", "conversation", "tools_called", "latency"}
)

_ITEM_KEY = ("source_key", "item_id")
_RESULT_KEY = ("run_id", "source_key", "item_id", "metric_name")

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


def _upsert_sql(table: str, temp: str, columns: Sequence[str], key: Sequence[str], extra_set: str = "") -> str:
    cols = ", ".join(columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {temp} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}{extra_set}"
    )


_UPSERT_ITEMS = _upsert_sql("evaluation_items", "_evalmon_items", ITEM_COLUMNS, _ITEM_KEY, ", updated_at = now()")
_UPSERT_RESULTS = _upsert_sql("evaluation_results", "_evalmon_results", RESULT_COLUMNS, _RESULT_KEY)


def item_record(source_key: str, item: DatasetItem) -> tuple[Any, ...]:
    """One evaluation_items row (ITEM_COLUMNS order), cleaned for Postgres."""
    inputs = item.model_dump(mode="json", include=set(INPUT_FIELDS), exclude_none=True)
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
        item.content_hash(),
        to_json(inputs),
        to_json(item.metadata),
    )


def result_record(run: RunContext, row: ResultRow, created_at: datetime) -> tuple[Any, ...]:
    """One evaluation_results row (RESULT_COLUMNS order), cleaned: NaN/inf -> NULL, NUL -> U+FFFD."""
    r = row.result
    return (
        clean_text(run.run_id),
        clean_text(run.source_key),
        clean_text(row.item.id),
        clean_text(row.metric_name),
        clean_text(run.monitor),
        clean_text(row.metric_key),
        clean_text(row.metric_version),
        r.status.value,
        clean_float(r.score),
        r.passed,
        clean_float(r.threshold),
        clean_text(r.label),
        clean_text(r.explanation),
        to_json(r.signals),
        clean_text(r.error),
        clean_float(r.cost_usd),
        clean_float(r.latency_s),
        clean_text(r.model),
        clean_text(r.prompt_name),
        clean_text(r.prompt_version),
        r.input_tokens,
        r.output_tokens,
        row.item.source_timestamp,
        created_at,
    )


def _counts(rows: Sequence[ResultRow]) -> dict[str, int]:
    counts: dict[str, int] = {"results": len(rows)}
    for row in rows:
        key = f"results_{row.status.value}"
        counts[key] = counts.get(key, 0) + 1
    return counts


class PostgresSink(Sink):
    """Publishes a run's results to Postgres/Neon; see the module docstring for the data flow."""

    name = "postgres"

    def __init__(self, settings: Settings, *, attempts: int = 3) -> None:
        self.settings = settings
        self.schema = schema_name(settings)
        self.attempts = attempts
        self._pool: AsyncConnectionPool | None = None
        database_url(settings)  # fail now with a ConfigError when DATABASE_URL is missing

    async def _get_pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            self._pool = await open_pool(self.settings, min_size=1, max_size=2)
        return self._pool

    async def check(self, run: RunContext) -> None:
        """Reachable and migrated; otherwise stop before any work."""
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

    async def publish(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        rows = _dedupe(results.rows)
        stored: set[PairKey] = {(row.item.id, row.metric_name) for row in rows}
        try:
            async for attempt in async_retrying(self.attempts, retry_on=is_transient):
                with attempt:
                    await self._write(run, rows)
        except Exception as exc:
            message = describe_error(exc, self.settings)
            log.warning("postgres: publishing run %s failed, rolled back: %s", run.run_id, message)
            return SinkReport(sink=self.name, error=message, details={"rows": len(rows)})
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
            if not rows:
                return
            await conn.execute(
                "CREATE TEMP TABLE _evalmon_items (LIKE evaluation_items INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            await conn.execute(
                "CREATE TEMP TABLE _evalmon_results (LIKE evaluation_results INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            async with conn.cursor() as cur:
                async with cur.copy(f"COPY _evalmon_items ({', '.join(ITEM_COLUMNS)}) FROM STDIN") as copy:
                    for item in items.values():
                        await copy.write_row(item_record(run.source_key, item))
                await cur.execute(_UPSERT_ITEMS)
                async with cur.copy(f"COPY _evalmon_results ({', '.join(RESULT_COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        await copy.write_row(result_record(run, row, created_at))
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
        return True

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _dedupe(rows: Sequence[ResultRow]) -> list[ResultRow]:
    """One row per (item id, metric name): a key must not appear twice in one upsert."""
    by_key: dict[PairKey, ResultRow] = {}
    for row in rows:
        by_key[(row.item.id, row.metric_name)] = row
    return list(by_key.values())
