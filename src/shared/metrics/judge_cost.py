"""What judge calls cost: a price table, token estimates and the run budget.

Cost is computed from each response's `usage` (prompt and completion tokens) and a price table
in USD per million tokens. The defaults cover common OpenAI models; a monitor overrides or
extends them (`prices:` in the metric params, or a YAML file), and self-hosted judges (vLLM,
Ollama) cost nothing unless priced.

The run budget (`evaluation.max_cost_usd`) is shared by every judge metric of a run. Before a
call, the metric *reserves* a pessimistic estimate (prompt tokens plus `max_tokens` of output);
after it, the reservation is settled with the real cost. A call whose reservation does not fit is
never made, so the budget is a hard ceiling even with many calls in flight; the rest of the run
is deferred and picked up by a later run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


class ModelPrice(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)


# USD per 1M tokens (public list prices; override in config when yours differ).
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(input=0.15, output=0.60),
    "gpt-4o": ModelPrice(input=2.50, output=10.00),
    "gpt-4.1-nano": ModelPrice(input=0.10, output=0.40),
    "gpt-4.1-mini": ModelPrice(input=0.40, output=1.60),
    "gpt-4.1": ModelPrice(input=2.00, output=8.00),
    "gpt-5-nano": ModelPrice(input=0.05, output=0.40),
    "gpt-5-mini": ModelPrice(input=0.25, output=2.00),
    "gpt-5": ModelPrice(input=1.25, output=10.00),
    "o4-mini": ModelPrice(input=1.10, output=4.40),
    "o3-mini": ModelPrice(input=1.10, output=4.40),
}


class PriceTable:
    """Prices by model name; a dated model name ("gpt-4o-mini-2024-07-18") uses its longest priced prefix."""

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices: dict[str, ModelPrice] = dict(DEFAULT_PRICES)
        self._prices.update(prices or {})
        self._warned: set[str] = set()

    @classmethod
    def from_config(cls, prices: Mapping[str, Any] | None = None, file: Path | None = None) -> PriceTable:
        """Defaults, then the YAML file (`model: {input: .., output: ..}`), then inline prices."""
        merged: dict[str, ModelPrice] = {}
        if file is not None:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{file}: a price table is a mapping of model -> {{input, output}}")
            merged.update({str(k): ModelPrice.model_validate(v) for k, v in loaded.items()})
        for key, value in (prices or {}).items():
            merged[key] = value if isinstance(value, ModelPrice) else ModelPrice.model_validate(value)
        return cls(merged)

    def price(self, model: str) -> ModelPrice | None:
        if model in self._prices:
            return self._prices[model]
        matches = [name for name in self._prices if model.startswith(name)]
        return self._prices[max(matches, key=len)] if matches else None

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """USD for one call; an unpriced model costs 0 (warned once, since the budget cannot bind)."""
        price = self.price(model)
        if price is None:
            if model not in self._warned:
                self._warned.add(model)
                log.warning("judge model %r has no price: its cost counts as 0 and the budget cannot limit it", model)
            return 0.0
        return (input_tokens * price.input + output_tokens * price.output) / 1_000_000

    def signature(self, model: str) -> dict[str, float] | None:
        price = self.price(model)
        return price.model_dump() if price else None


def estimate_tokens(text: str) -> int:
    """A tokenizer-free, slightly pessimistic token count (about 3.5 characters per token)."""
    return max(1, int(len(text) / 3.5) + 1)


def messages_text(messages: list[dict[str, str]]) -> str:
    return "\n".join(m.get("content", "") for m in messages)


class BudgetExhausted(Exception):
    """The run budget cannot cover another call."""


@dataclass
class Reservation:
    amount: float


class RunBudget:
    """The judge budget of one run, shared by all judge metrics (lives in `MetricContext.shared`).

    Once a reservation fails, the budget is closed for the rest of the run: later (perhaps
    cheaper) calls are deferred too, so "budget reached" means the same thing for every metric.
    """

    def __init__(self, limit_usd: float | None) -> None:
        self.limit_usd = limit_usd
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.exhausted = False
        self.calls = 0
        self._lock = asyncio.Lock()

    async def reserve(self, amount: float) -> Reservation:
        async with self._lock:
            limit = self.limit_usd
            if limit is not None and (self.exhausted or self.spent_usd + self.reserved_usd + amount > limit + 1e-12):
                self.exhausted = True
                raise BudgetExhausted(f"run budget of ${limit:.4f} reached (spent ${self.spent_usd:.4f})")
            self.reserved_usd += amount
            return Reservation(amount)

    async def settle(self, reservation: Reservation, actual: float) -> None:
        """Replace the reservation by the real cost (0 when the call failed before any usage)."""
        async with self._lock:
            self.reserved_usd = max(0.0, self.reserved_usd - reservation.amount)
            self.spent_usd += actual
            self.calls += 1

    @property
    def remaining_usd(self) -> float | None:
        return None if self.limit_usd is None else max(0.0, self.limit_usd - self.spent_usd)
