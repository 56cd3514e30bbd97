"""The sink plug-in point: `publish(run, results) -> SinkReport`, idempotent.

A sink reports, per (item id, metric name), what it durably stored. The ledger records only pairs
that every required sink stored (architecture.md section 3), so a sink must never claim a pair it did
not confirm.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from shared.evaluation.results import EvaluationResult
from shared.monitoring.run_context import RunContext
from shared.registry import Registry

PairKey = tuple[str, str]  # (item id, metric name)


class SinkParams(BaseModel):
    """A sink's options from its `publish.sinks` entry; subclass it to declare them."""

    model_config = ConfigDict(extra="forbid")


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
    Params: ClassVar[type[SinkParams]] = SinkParams  # what a `publish.sinks` entry may set

    def __init__(self, params: SinkParams | None = None) -> None:
        """A sink listed in `publish.sinks` is built as `cls(params)`; it reads the run (settings,
        base_dir, results_dir) from the RunContext its methods receive."""
        self.params = params if params is not None else self.Params()

    async def check(self, run: RunContext) -> None:  # noqa: B027 - optional hook
        """Fail fast before any work (credentials, reachability, schema present)."""

    @abstractmethod
    async def publish(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        """Store results; return exactly the pairs confirmed stored. Never raise for data errors."""

    async def finish(self, run: RunContext, summary: dict[str, object]) -> None:  # noqa: B027 - optional hook
        """Record the run's final status and counts (best effort, after the ledger)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""


sink_registry: Registry[type[Sink]] = Registry("sink type")
# Built-ins register with @register_sink in these modules; they are configured by their own
# sections (publish.local, publish.postgres, publish.langfuse), not in publish.sinks.
BUILTIN_SINKS = {
    "local": "shared.monitoring.sinks.local",
    "postgres": "shared.database.sink",
    "langfuse": "shared.langfuse.sink",
}
for _key, _module in BUILTIN_SINKS.items():
    sink_registry.register_lazy(_key, _module)

K = TypeVar("K", bound=type[Sink])


def register_sink(key: str) -> Callable[[K], K]:
    """Class decorator: `publish.sinks: [{type: KEY, ...}]` builds this Sink (docs/plugins.md)."""

    def wrap(cls: K) -> K:
        if not cls.name:
            cls.name = key
        sink_registry.register(key, cls)
        return cls

    return wrap
