"""Read helpers for analysts: pandas DataFrames straight from the results database.

Every helper takes the same filters (monitor, metric, a time range) and either `settings` or a
`url`; with neither it reads DATABASE_URL from the environment / repo .env like the CLI does.
Time is the trace's own timestamp when the source gave one, else when it was scored (the `ts`
column of the `evaluation_results_with_items` view), so backfilled windows chart on their real days.

    from shared.database import read
    read.daily_metrics(monitor="athena_recommendations", since="2026-11-01")
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from shared.database.connection import connect, schema_name, sync_transaction
from shared.evaluation.columns import ITEM_FIELDS, RESULTS_TABLE
from shared.evaluation.item import to_utc
from shared.monitoring.window import parse_iso
from shared.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

TimeBound = datetime | str | None

# What `results` and `latest_scores` return (columns of the evaluation_results_with_items view), from the
# one column definition: the result's columns (`ts` first, the item's own timestamp left to the item part),
# then the item's, then its metadata.
RESULT_FIELDS = (
    "ts",
    *(c.db for c in RESULTS_TABLE if c.name != "source_timestamp"),
    *(c.db for c in ITEM_FIELDS if c is not ITEM_FIELDS[0]),
    "metadata",
)


def results(
    monitor: str | None = None,
    metric: str | None = None,
    since: TimeBound = None,
    until: TimeBound = None,
    *,
    settings: Settings | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Every result row (with its item's fields) in the range, oldest first."""
    where, params = _filters(monitor, metric, since, until)
    query = f"SELECT {', '.join(RESULT_FIELDS)} FROM evaluation_results_with_items {where} ORDER BY ts, item_id, metric_name"
    return _frame(query, params, _settings(settings, url), time_columns=("ts", "created_at", "source_timestamp"))


def daily_metrics(
    monitor: str | None = None,
    metric: str | None = None,
    since: TimeBound = None,
    until: TimeBound = None,
    *,
    settings: Settings | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Per UTC day, monitor and metric: n scored, mean score, pass rate, errors.

    Only `ok` rows count towards n, mean and pass rate (as in a run summary); NULL scores and
    passes are left out of the mean and the rate rather than counted as zero.
    """
    where, params = _filters(monitor, metric, since, until)
    query = f"""
        SELECT date_trunc('day', ts AT TIME ZONE 'UTC')::date AS day, monitor, metric_name,
               count(*) FILTER (WHERE status = 'ok') AS n,
               avg(score) FILTER (WHERE status = 'ok') AS mean,
               avg(passed::int) FILTER (WHERE status = 'ok' AND passed IS NOT NULL) AS pass_rate,
               count(*) FILTER (WHERE status = 'error') AS errors
        FROM evaluation_results_with_items {where}
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    """
    frame = _frame(query, params, _settings(settings, url))
    if not frame.empty:
        import pandas as pd

        frame["day"] = pd.to_datetime(frame["day"])
        for column in ("mean", "pass_rate"):
            frame[column] = frame[column].astype(float)
    return frame


def latest_scores(
    monitor: str | None = None,
    metric: str | None = None,
    since: TimeBound = None,
    until: TimeBound = None,
    *,
    settings: Settings | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """The most recent result per (monitor, item, metric): what each item scores today."""
    where, params = _filters(monitor, metric, since, until)
    query = f"""
        SELECT DISTINCT ON (monitor, source_key, item_id, metric_name) {", ".join(RESULT_FIELDS)}
        FROM evaluation_results_with_items {where}
        ORDER BY monitor, source_key, item_id, metric_name, created_at DESC, run_id DESC
    """
    return _frame(query, params, _settings(settings, url), time_columns=("ts", "created_at", "source_timestamp"))


def judge_scores(
    monitor: str,
    *,
    trace_ids: Sequence[str] = (),
    item_ids: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    settings: Settings | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """The ok results of a monitor on these traces or items, only the columns calibration needs
    (`shared.monitoring.calibration` reads the items people labelled, not the whole history)."""
    query = """
        SELECT item_id, trace_id, observation_id, metric_name, metric_version, score, passed, threshold, label,
               created_at
        FROM evaluation_results_with_items
        WHERE monitor = %s AND status = 'ok' AND (trace_id = ANY(%s) OR item_id = ANY(%s))
    """
    params: list[Any] = [monitor, list(trace_ids), list(item_ids)]
    if metrics is not None:
        query += " AND metric_name = ANY(%s)"
        params.append(list(metrics))
    return _frame(query, params, _settings(settings, url), time_columns=("created_at",))


def _settings(settings: Settings | None, url: str | None) -> Settings:
    if url is not None:
        base = settings or load_settings()
        return base.model_copy(update={"database_url": SecretStr(url)})
    return settings or load_settings()


def _bound(value: TimeBound, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return to_utc(value)
    return parse_iso(value, field=field)


def _filters(monitor: str | None, metric: str | None, since: TimeBound, until: TimeBound) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("monitor = %s", monitor),
        ("metric_name = %s", metric),
        ("ts >= %s", _bound(since, "since")),
        ("ts < %s", _bound(until, "until")),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _frame(query: str, params: list[Any], settings: Settings, *, time_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    import pandas as pd

    schema = schema_name(settings)
    with connect(settings) as conn, sync_transaction(conn, schema), conn.cursor() as cur:
        cur.execute(query.encode("utf-8"), params)
        columns = [d.name for d in cur.description or ()]
        rows = cur.fetchall()
    frame = pd.DataFrame(rows, columns=columns)
    for column in time_columns:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
