"""The ledger contract (architecture.md section 3).

A ledger entry says: monitor M scored item (source_key, item_id) with metric N at version V.
`filter_unscored` returns, per candidate, the metrics still to run; `record` is called last, and
only with pairs that every required sink stored. Implementations hold whatever exclusion they
need between `open` and `close` (a file lock, leased claims).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from shared.evaluation.item import DatasetItem
from shared.evaluation.runner import PendingItem


@dataclass(frozen=True)
class LedgerEntry:
    monitor: str
    source_key: str
    item_id: str
    metric_name: str
    metric_version: str
    run_id: str
    recorded_at: str  # ISO 8601 UTC


class ScoredItemsStore(ABC):
    """Dedup state of one monitor over one source."""

    def __init__(self, monitor: str, source_key: str) -> None:
        self.monitor = monitor
        self.source_key = source_key
        # Candidates `filter_unscored` left out because another live worker holds them (not
        # because they are scored): they still need scoring, by that worker or a later run.
        self.claimed_elsewhere = 0

    async def open(self, run_id: str) -> None:  # noqa: B027 - optional hook
        """Take whatever exclusion the store needs for a run (file lock, claim session)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release it. Unrecorded claims become available to the next run."""

    async def __aenter__(self) -> ScoredItemsStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @abstractmethod
    async def filter_unscored(self, items: Sequence[DatasetItem], versions: Mapping[str, str]) -> list[PendingItem]:
        """Items with at least one metric whose current version is not recorded, and which ones."""

    @abstractmethod
    async def record(self, entries: Sequence[LedgerEntry]) -> int:
        """Append entries (idempotent). Returns how many were new."""

    async def release(self, items: Sequence[DatasetItem]) -> None:  # noqa: B027 - optional hook
        """Give up claims on items this run took but will not score (e.g. not sampled)."""


class NullStore(ScoredItemsStore):
    """`dedup.store: none`: everything is always new (for notebooks and experiments)."""

    async def filter_unscored(self, items: Sequence[DatasetItem], versions: Mapping[str, str]) -> list[PendingItem]:
        return [PendingItem(item) for item in items]

    async def record(self, entries: Sequence[LedgerEntry]) -> int:
        return 0
