"""Read scores back from Langfuse (`GET /api/public/v3/scores`) through the official SDK.

Calibration compares two kinds of score on the same trace or observation: the ones evalmon wrote
(found by their deterministic ids, `shared.langfuse.score_body.score_id`, else by metric name on the
labelled traces) and the ones people gave (found by score name, whatever their source:
ANNOTATION from annotation queues, API from user feedback, EVAL). Both come back as `StoredScore`,
one plain shape whatever the score's data type.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from langfuse import Langfuse

from shared.langfuse.client import CallStats, call_api

PAGE = 100  # the v3 scores endpoint answers at most 100 per page
IDS_PER_QUERY = 50  # ids in one `id=` / `traceId=` filter: keeps the query string short
FIELDS = "details,subject"
EVALMON_MARKERS = ("config_hash", "evalmon_version")  # metadata keys every score evalmon writes carries


@dataclass(frozen=True)
class StoredScore:
    """One score as Langfuse holds it. `value` is a float for NUMERIC and BOOLEAN (1.0/0.0) scores,
    a string for CATEGORICAL and TEXT ones."""

    id: str
    name: str
    value: float | str | None
    data_type: str
    source: str
    timestamp: datetime
    updated_at: datetime
    trace_id: str | None
    observation_id: str | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def written_by_evalmon(self) -> bool:
        return all(key in self.metadata for key in EVALMON_MARKERS)


class ScoreReader:
    """Paged, retried reads of v3 scores."""

    def __init__(
        self,
        client: Langfuse,
        *,
        attempts: int = 5,
        initial_wait: float = 0.5,
        max_wait: float = 30.0,
        stats: CallStats | None = None,
    ) -> None:
        self.client = client
        self.attempts = attempts
        self.initial_wait = initial_wait
        self.max_wait = max_wait
        self.stats = stats or CallStats()

    async def by_name(
        self, names: Sequence[str], *, since: datetime | None = None, until: datetime | None = None
    ) -> list[StoredScore]:
        """Every score with one of these names whose timestamp is in [since, until)."""
        return await self._all(name=",".join(names), from_timestamp=since, to_timestamp=until)

    async def by_ids(self, ids: Iterable[str]) -> list[StoredScore]:
        found: list[StoredScore] = []
        for chunk in _chunks(sorted(set(ids)), IDS_PER_QUERY):
            found.extend(await self._all(id=",".join(chunk)))
        return found

    async def on_traces(self, names: Sequence[str], trace_ids: Iterable[str]) -> list[StoredScore]:
        """Scores with one of these names on these traces (their observations' scores included)."""
        found: list[StoredScore] = []
        for chunk in _chunks(sorted(set(trace_ids)), IDS_PER_QUERY):
            found.extend(await self._all(name=",".join(names), trace_id=",".join(chunk)))
        return found

    async def _all(self, **filters: Any) -> list[StoredScore]:
        scores: list[StoredScore] = []
        cursor: str | None = None
        while True:
            page = await call_api(
                self.client.api.scores.get_many,
                limit=PAGE,
                cursor=cursor,
                fields=FIELDS,
                attempts=self.attempts,
                initial_wait=self.initial_wait,
                max_wait=self.max_wait,
                stats=self.stats,
                **{k: v for k, v in filters.items() if v is not None},
            )
            scores.extend(stored_score(s) for s in page.data)
            cursor = page.meta.cursor
            if not cursor or not page.data:
                return scores


def stored_score(score: Any) -> StoredScore:
    """The SDK's ScoreV3 union -> StoredScore."""
    subject: Any = getattr(score, "subject", None)
    kind = getattr(subject, "kind", None)
    trace_id = observation_id = None
    if kind == "trace":
        trace_id = subject.id
    elif kind == "observation":
        observation_id, trace_id = subject.id, getattr(subject, "trace_id", None)
    return StoredScore(
        id=score.id,
        name=score.name,
        value=_plain_value(getattr(score, "value", None)),
        data_type=str(getattr(score, "data_type", "NUMERIC")),
        source=str(score.source),
        timestamp=score.timestamp,
        updated_at=score.updated_at,
        trace_id=trace_id,
        observation_id=observation_id,
        metadata=dict(score.metadata or {}),
    )


def _plain_value(value: Any) -> float | str | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    return value if isinstance(value, str) else None


def _chunks(values: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])
