"""The sink plug-in point: `publish(run, results) -> SinkReport`, idempotent.

A sink reports, per (item id, metric name), what it durably stored. The ledger records only pairs
that every required sink stored (architecture.md section 3), so a sink must never claim a pair it did
not confirm.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from shared.evaluation.results import EvaluationResult
from shared.monitoring.run_context import RunContext

PairKey = tuple[str, str]  # (item id, metric name)


@dataclass
class SinkReport:
    sink: str
    stored: set[PairKey] = field(default_factory=set)
    error: str | None = None
    details: dict[str, object] = field(default_factory=dict)
    # The failure came from the rows themselves (a value the store refuses), not from the service:
    # `publish_results` then publishes parts of the run to find the rejected rows, so they fail alone.
    # Only for sinks where publishing any subset of a run is safe and idempotent.
    row_error: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


class Sink(ABC):
    name: str = ""
    required: bool = True  # a required sink's failure keeps pairs out of the ledger

    async def check(self, run: RunContext) -> None:  # noqa: B027 - optional hook
        """Fail fast before any work (credentials, reachability, schema present)."""

    @abstractmethod
    async def publish(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        """Store results; return exactly the pairs confirmed stored. Never raise for data errors."""

    async def finish(self, run: RunContext, summary: dict[str, object]) -> None:  # noqa: B027 - optional hook
        """Record the run's final status and counts (best effort, after the ledger)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""
