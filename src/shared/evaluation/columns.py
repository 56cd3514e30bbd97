"""The columns of a result, defined once.

Everything that lists result columns derives them from here: the results files and DataFrames
(`results.py`, the local sink), the Postgres sink's COPY column lists and types, and the analyst
reads (`shared.database.read`). The SQL migrations stay hand-written (an applied migration never
changes); tests/database/test_columns.py checks a freshly migrated schema against these lists, so
a column added here without a migration (or the reverse) fails the suite.

A column has one name in files and DataFrames; Postgres names two of them differently
(`id` -> `item_id`, `metric_score` -> `score`), and `direction` lives in files only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["text", "float", "int", "bool", "json", "timestamp"]

# Postgres type of each column type, as psycopg's binary COPY names it (`copy.set_types`).
PG_TYPES: dict[ColumnType, str] = {
    "text": "text",
    "float": "float8",
    "int": "int4",
    "bool": "bool",
    "json": "jsonb",
    "timestamp": "timestamptz",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType = "text"
    db_name: str | None = None  # the Postgres column, when it is named differently
    in_db: bool = True  # False: results files and DataFrames only

    @property
    def db(self) -> str:
        return self.db_name or self.name

    @property
    def pg_type(self) -> str:
        return PG_TYPES[self.type]


# -- a result row: the item's columns, then the metric's (files, DataFrames, `ResultRow.as_record`) --
ITEM_FIELDS = (
    Column("id", db_name="item_id"),
    Column("trace_id"),
    Column("observation_id"),
    Column("session_id"),
    Column("source_timestamp", "timestamp"),  # ISO 8601 text in files
    Column("query"),
    Column("actual_output"),
    Column("expected_output"),
)
METRIC_FIELDS = (
    Column("metric_name"),
    Column("metric_key"),
    Column("metric_version"),
    Column("metric_score", "float", db_name="score"),
    Column("passed", "bool"),
    Column("threshold", "float"),
    Column("label"),
    Column("status"),
    Column("explanation"),
    Column("error"),
    Column("signals", "json"),
    Column("cost_usd", "float"),
    Column("latency_s", "float"),
    Column("model"),
    Column("prompt_name"),
    Column("prompt_version"),
    Column("input_tokens", "int"),
    Column("output_tokens", "int"),
    Column("direction", in_db=False),  # which way the score is good: higher_is_better | lower_is_better
)

# Column order of to_dataframe(), read_results() and results_with_text.csv.
RESULT_COLUMNS = [c.name for c in (*ITEM_FIELDS, *METRIC_FIELDS)]
ITEM_COLUMNS = [c.name for c in ITEM_FIELDS]  # what item_values() returns; the rest is ResultRow.metric_values()
# The local sink's compact layout (Parquet parts or CSV): `items` holds an item's text once;
# `results` one row per (item, metric) naming the item by id and trace id only.
ITEM_ID_COLUMNS = ["id", "trace_id"]
SCORE_COLUMNS = [*ITEM_ID_COLUMNS, *(c.name for c in METRIC_FIELDS)]

# -- Postgres: the columns the sink writes, in its COPY order ---------------------------------------
SOURCE_KEY = Column("source_key")
ITEMS_TABLE = (
    SOURCE_KEY,
    *ITEM_FIELDS,
    Column("content_hash"),  # DatasetItem.content_hash()
    Column("inputs", "json"),  # the other item fields a metric reads (shared.database.sink.INPUT_FIELDS)
    Column("metadata", "json"),
)
RESULTS_TABLE = (
    Column("run_id"),  # the run that wrote the row last
    Column("monitor"),
    SOURCE_KEY,
    ITEM_FIELDS[0],
    *(c for c in METRIC_FIELDS if c.in_db),
    Column("source_timestamp", "timestamp"),  # the item's: results chart on the trace's own time
    Column("created_at", "timestamp"),
)
# Set by Postgres (defaults), never written by the sink.
SERVER_SET = {"evaluation_items": ("first_seen_at", "updated_at"), "evaluation_results": ()}
TABLES = {"evaluation_items": ITEMS_TABLE, "evaluation_results": RESULTS_TABLE}
