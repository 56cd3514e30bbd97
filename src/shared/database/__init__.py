"""Postgres: the sink, the ledger and the read helpers notebooks use (migrations: `evalmon db`).

The names below load on first use (`shared.exports`), so psycopg is imported only when a
monitor or notebook uses the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.exports import lazy_exports

if TYPE_CHECKING:
    from shared.database.ledger import PostgresScoredItemsStore
    from shared.database.read import daily_metrics, judge_scores, latest_scores, results
    from shared.database.sink import PostgresSink

__all__ = [
    "PostgresScoredItemsStore",
    "PostgresSink",
    "daily_metrics",
    "judge_scores",
    "latest_scores",
    "results",
]

if not TYPE_CHECKING:  # type checkers read the imports above; an unknown name stays an error
    __getattr__, __dir__ = lazy_exports(__name__, __file__)
