"""Streaming samplers: `offer(item)` as items arrive, `take_ready()` as they go, `result()` at the end.

Memory is O(sample), not O(fetched), and every sampler is deterministic given its seed and its
input: rerunning a window picks the same items. `most_recent` and `oldest` order by the item's
timestamp, never by source order. `all` and `rate` decide each item as it is offered, so the
monitor takes their choices chunk by chunk (`take_ready`) and memory stays flat; the others can
only choose at the end.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from shared.evaluation.item import DatasetItem
from shared.evaluation.runner import PendingItem
from shared.monitoring.config import SamplingConfig
from shared.registry import Registry, validate_params


@dataclass(frozen=True)
class Candidate:
    """An item a run may score: the metrics the ledger still wants of it, and the source record to
    hydrate once it is chosen (None when the item was extracted from a complete record already)."""

    pending: PendingItem
    record: Any = None

    @property
    def item(self) -> DatasetItem:
        return self.pending.item


T = TypeVar("T", Candidate, PendingItem, DatasetItem)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _item(value: Candidate | PendingItem | DatasetItem) -> DatasetItem:
    return value.item if isinstance(value, Candidate | PendingItem) else value


class SamplerParams(BaseModel):
    """A sampler's options from `sampling.params`; subclass it to declare them."""

    model_config = ConfigDict(extra="forbid")


class Sampler(ABC, Generic[T]):
    Params: ClassVar[type[SamplerParams]] = SamplerParams  # what `sampling.params` may set
    # The item fields the sampler reads; when all are filled by a preview (PREVIEW_FIELDS), a source
    # that reads in parts samples before it hydrates. None: anything, so every record is read in full.
    reads_fields: ClassVar[frozenset[str] | None] = None

    def __init__(self, config: SamplingConfig) -> None:
        self.config = config
        self.params = self.Params.model_validate(config.params)
        self.offered = 0

    def offer(self, value: T) -> None:
        self.offered += 1
        self._offer(value)

    @abstractmethod
    def _offer(self, value: T) -> None: ...

    def take_ready(self) -> list[T]:
        """Items already chosen for good, handed over once (samplers that decide per item)."""
        return []

    @abstractmethod
    def result(self) -> list[T]:
        """Everything chosen and not yet taken by `take_ready`."""


SamplerFactory = Callable[[SamplingConfig], Sampler[Any]]  # usually a Sampler subclass
sampler_registry: Registry[SamplerFactory] = Registry("sampling strategy")
F = TypeVar("F", bound=SamplerFactory)


def register_sampler(key: str) -> Callable[[F], F]:
    """Decorator: `sampling: {strategy: KEY, params: {...}}` uses this Sampler (docs/plugins.md)."""

    def wrap(factory: F) -> F:
        sampler_registry.register(key, factory)
        return factory

    return wrap


class _PerItemSampler(Sampler[T]):
    """Decides on each item as it is offered and hands the kept ones on at once (`take_ready`), so
    memory holds only what the run has not taken yet (`all`, `rate`)."""

    def __init__(self, config: SamplingConfig) -> None:
        super().__init__(config)
        self._items: list[T] = []

    def keeps(self, value: T) -> bool:
        return True

    def _offer(self, value: T) -> None:
        if self.keeps(value):
            self._items.append(value)

    def take_ready(self) -> list[T]:
        ready, self._items = self._items, []
        return ready

    def result(self) -> list[T]:
        return self.take_ready()


@register_sampler("all")
class AllSampler(_PerItemSampler[T]):
    reads_fields = frozenset()


@register_sampler("random")
class RandomSampler(Sampler[T]):
    """Reservoir sampling (Algorithm R), seeded."""

    reads_fields = frozenset()

    def __init__(self, config: SamplingConfig) -> None:
        super().__init__(config)
        assert config.n is not None
        self.n = config.n
        self._rng = random.Random(config.seed)
        self._reservoir: list[T] = []

    def _offer(self, value: T) -> None:
        if len(self._reservoir) < self.n:
            self._reservoir.append(value)
            return
        slot = self._rng.randrange(self.offered)
        if slot < self.n:
            self._reservoir[slot] = value

    def result(self) -> list[T]:
        return list(self._reservoir)


class TimeOrderedSampler(Sampler[T]):
    """Keeps the n newest (`most_recent`) or oldest items by source_timestamp, with a bounded heap.

    Items without a timestamp rank last for both orders; ties break by item id for determinism.
    """

    def __init__(self, config: SamplingConfig, *, newest: bool) -> None:
        super().__init__(config)
        assert config.n is not None
        self.n = config.n
        self.newest = newest
        self._heap: list[tuple[tuple[int, float, str], int, T]] = []
        self._counter = itertools.count()

    def _rank(self, item: DatasetItem) -> tuple[int, float, str]:
        ts = item.source_timestamp
        if ts is None:
            return (0, 0.0, item.id)
        seconds = (ts - _EPOCH).total_seconds()
        return (1, seconds if self.newest else -seconds, item.id)

    def _offer(self, value: T) -> None:
        entry = (self._rank(_item(value)), next(self._counter), value)
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, entry)
        elif entry[0] > self._heap[0][0]:
            heapq.heapreplace(self._heap, entry)

    def result(self) -> list[T]:
        return [value for _, _, value in sorted(self._heap, key=lambda e: e[0], reverse=True)]


@register_sampler("most_recent")
class MostRecentSampler(TimeOrderedSampler[T]):
    reads_fields = frozenset({"id", "source_timestamp"})

    def __init__(self, config: SamplingConfig) -> None:
        super().__init__(config, newest=True)


@register_sampler("oldest")
class OldestSampler(TimeOrderedSampler[T]):
    reads_fields = frozenset({"id", "source_timestamp"})

    def __init__(self, config: SamplingConfig) -> None:
        super().__init__(config, newest=False)


def stable_fraction(item_id: str, seed: int) -> float:
    """A number in [0, 1) fixed by the item id and seed: the same item is kept in every run."""
    digest = hashlib.blake2b(f"{seed}:{item_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@register_sampler("rate")
class RateSampler(_PerItemSampler[T]):
    reads_fields = frozenset({"id"})

    def __init__(self, config: SamplingConfig) -> None:
        super().__init__(config)
        assert config.rate is not None
        self.rate = config.rate

    def keeps(self, value: T) -> bool:
        return stable_fraction(_item(value).id, self.config.seed) < self.rate


@register_sampler("stratified")
class StratifiedSampler(Sampler[T]):
    """A seeded reservoir of up to n per stratum, then n split in proportion to stratum sizes,
    with at least `min_per_stratum` from every stratum (so small strata are never starved)."""

    def __init__(self, config: SamplingConfig) -> None:
        super().__init__(config)
        assert config.n is not None and config.field is not None
        self.n = config.n
        self.field = config.field
        self._strata: dict[str, RandomSampler[T]] = {}

    def _offer(self, value: T) -> None:
        from shared.monitoring.extractors import get_path

        key = str(get_path(_item(value).model_dump(), self.field))
        if key not in self._strata:
            seed = self.config.seed + int(stable_fraction(key, 0) * 1_000_000)
            self._strata[key] = RandomSampler(self.config.model_copy(update={"strategy": "random", "seed": seed}))
        self._strata[key].offer(value)

    def result(self) -> list[T]:
        total = sum(s.offered for s in self._strata.values())
        if total == 0:
            return []
        quotas = {
            key: max(self.config.min_per_stratum, round(self.n * s.offered / total)) for key, s in self._strata.items()
        }
        out: list[T] = []
        for key in sorted(self._strata):
            out.extend(self._strata[key].result()[: quotas[key]])
        return out


# Item fields a stratified sampler can read before hydration: what `DataSource.preview` fills.
PREVIEW_FIELDS = frozenset(
    {"id", "trace_id", "observation_id", "session_id", "source_timestamp"}
    | {f"metadata.{key}" for key in ("trace_name", "tags", "environment", "user_id")}
)


def samples_on_preview(config: SamplingConfig) -> bool:
    """Can this sampler choose from items previewed on root records (ids, timestamps, trace name, tags)?"""
    if config.strategy == "stratified":
        return (config.field or "") in PREVIEW_FIELDS
    reads = getattr(sampler_registry.resolve(config.strategy, field="sampling.strategy"), "reads_fields", None)
    return reads is not None and reads <= PREVIEW_FIELDS


def make_sampler(config: SamplingConfig) -> Sampler[Candidate]:
    """The registered sampler `sampling.strategy` names, built with the sampling config."""
    return sampler_registry.resolve(config.strategy, field="sampling.strategy")(config)


def check_sampling(config: SamplingConfig) -> None:
    """Fail at load, not mid-run: the strategy is registered and `sampling.params` suits its Params."""
    factory = sampler_registry.resolve(config.strategy, field="sampling.strategy")
    params_model = getattr(factory, "Params", SamplerParams)
    validate_params(params_model, config.params, field="sampling.params")
