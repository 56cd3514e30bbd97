"""The one column definition (shared/evaluation/columns.py) against the SQL migrations and the sink.

The migrations are hand-written SQL and never edited once applied; these tests fail when a column is
added to the definition without a migration (or to a migration without the definition), when a type
differs, or when the sink's positional records no longer line up with the column names.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg

from shared.database import read
from shared.database.sink import PostgresSink
from shared.evaluation.columns import ITEM_FIELDS, METRIC_FIELDS, RESULT_COLUMNS, SERVER_SET, TABLES
from shared.evaluation.metric import MetricStatus
from shared.settings import Settings

from .helpers import item, results, row, run_context


def _columns(settings: Settings, relation: str) -> dict[str, str]:
    """name -> type of a table or view in the test's schema, types as Postgres spells them."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        found = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = format('%%I.%%I', %s::text, %s::text)::regclass AND a.attnum > 0 "
            "AND NOT a.attisdropped",
            [settings.evalmon_db_schema, relation],
        ).fetchall()
        return {str(name): str(type_) for name, type_ in found}


def _spelled(settings: Settings, pg_types: set[str]) -> dict[str, str]:
    """The definition's type names (`float8`, `timestamptz`) as Postgres spells them in a catalog."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        found = {t: conn.execute("SELECT %s::regtype::text", [t]).fetchone() for t in pg_types}
    return {t: str(spelling[0]) for t, spelling in found.items() if spelling is not None}


def test_a_migrated_schema_has_exactly_the_defined_columns_and_types(migrated: Settings) -> None:
    spelled = _spelled(migrated, {c.pg_type for table in TABLES.values() for c in table})
    for table, columns in TABLES.items():
        found = _columns(migrated, table)
        written = {c.db: spelled[c.pg_type] for c in columns}
        assert {name: found.get(name) for name in written} == written, table
        assert set(found) - set(written) == set(SERVER_SET[table]), f"{table}: columns the definition does not know"


def test_the_view_offers_every_column_the_reads_select(migrated: Settings) -> None:
    view = _columns(migrated, "evaluation_results_with_items")
    assert [name for name in read.RESULT_FIELDS if name not in view] == []


def test_every_defined_column_lands_in_its_own_database_column(migrated: Settings) -> None:
    """One row with a distinct value in every column: what read.results returns under each column's
    Postgres name is what the row holds under its file name (a swapped pair in the sink's positional
    records would show here)."""
    run = run_context(migrated)
    it = item("it-1", trace_id="tr-1", observation_id="ob-1", session_id="se-1", expected_output="ex-1")
    scored = row(
        it,
        "m-name",
        score=0.25,
        version="v-9",
        passed=False,
        threshold=0.75,
        label="lab",
        explanation="why",
        error="err",
        signals={"k": 1},
        cost_usd=0.5,
        latency_s=1.5,
        model="mod",
        prompt_name="pn",
        prompt_version="pv",
        input_tokens=11,
        output_tokens=22,
        status=MetricStatus.OK,
    )

    async def publish() -> Any:
        sink = PostgresSink(migrated)
        try:
            await sink.check(run)
            return await sink.publish(run, results(scored))
        finally:
            await sink.aclose()

    assert asyncio.run(publish()).error is None
    [stored] = read.results(settings=migrated).to_dict("records")
    record = scored.as_record()
    assert list(record) == RESULT_COLUMNS
    for column in (*ITEM_FIELDS, *METRIC_FIELDS):
        if not column.in_db:
            continue
        value = stored[column.db]
        if column.type == "timestamp":
            value = value.isoformat()
        elif column.type == "json" and isinstance(value, str):
            value = json.loads(value)
        assert value == record[column.name], column.name
