"""`strategy: per_session`: at most `per_session` items of each conversation, so one long chat
cannot fill a run's sample.

    sampling:
      strategy: per_session
      params: {per_session: 2}

Which items: those with the lowest hash of (seed, item id) in their session, so a rerun of the
window picks the same ones whatever order the source returns them in. Memory: `per_session`
items per session. Items without a session count as sessions of their own trace.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from typing import Any

from pydantic import Field

from evalmon import DatasetItem, Sampler, SamplerParams, SamplingConfig, register_sampler


class PerSessionParams(SamplerParams):
    per_session: int = Field(default=1, ge=1, description="items kept from each session")


@register_sampler("per_session")
class PerSessionSampler(Sampler[Any]):
    Params = PerSessionParams
    params: PerSessionParams  # `sampling.params`, validated by Sampler.__init__
    # Reads only what a source's preview fills, so a source that reads in parts samples before
    # it fetches whole traces.
    reads_fields = frozenset({"id", "trace_id", "session_id"})

    def __init__(self, config: SamplingConfig) -> None:
        super().__init__(config)
        self._kept: dict[str, list[tuple[float, int, Any]]] = {}  # session -> heap, the worst kept first
        self._order = itertools.count()  # breaks ties without comparing the values

    def _offer(self, value: Any) -> None:
        item: DatasetItem = getattr(value, "item", value)  # evalmon offers candidates holding an item
        session = item.session_id or item.trace_id or item.id
        rank = _rank(self.config.seed, item.id)
        kept = self._kept.setdefault(session, [])
        entry = (-rank, next(self._order), value)
        if len(kept) < self.params.per_session:
            heapq.heappush(kept, entry)
        elif entry[0] > kept[0][0]:  # ranks lower than the worst one kept
            heapq.heapreplace(kept, entry)

    def result(self) -> list[Any]:
        chosen = [(-negated, value) for kept in self._kept.values() for negated, _, value in kept]
        return [value for _, value in sorted(chosen, key=lambda pair: pair[0])]


def _rank(seed: int, item_id: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{item_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
