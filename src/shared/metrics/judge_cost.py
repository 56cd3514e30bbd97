"""What judge calls cost: a price table, token statistics and the run budget.

Cost is computed from each response's `usage` (prompt and completion tokens) and a price table
in USD per million tokens. The defaults cover common OpenAI models; a monitor overrides or
extends them (`prices:` in the metric params, or a YAML file), and self-hosted judges (vLLM,
Ollama) cost nothing unless priced.

The run budget (`evaluation.max_cost_usd`) is shared by every judge metric of a run. Before a
call, the metric reserves its *expected* cost (prompt tokens at the observed characters per
token, plus the output tokens this judge's answers have had so far) and notes its *worst* case
(output up to `max_tokens`); after the call, the reservation is replaced by the real cost. Two
rules keep the budget both spent and safe:

- a call is deferred only when the money spent plus the expected cost of the calls in flight
  plus its own would pass the cap and nothing in flight can still free money;
- a call waits while the money spent plus the worst case of the calls in flight is above the
  cap, so the run's spend never passes the cap by more than one call's worst case.

A deferred call closes the budget for the rest of the run (later items are deferred too) and a
later run picks them up.
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

    def cost(self, model: str, input_tokens: float, output_tokens: float) -> float:
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


BUDGET_KEY = "judge.budget"  # the run's RunBudget in `MetricContext.shared`


class BudgetExhausted(Exception):
    """The run budget cannot cover another call."""


class JudgeStats:
    """Observed token counts of one judge model: what expected and worst-case costs are made of.

    Seeded from the judge cache (answers of earlier runs) and updated with every answer of this
    run. Prompt tokens are learned as characters per token (tokenizers differ by model and
    language); output tokens are learned per prompt, since a claim list is longer than a verdict.
    """

    DEFAULT_CHARS_PER_TOKEN = 3.5  # slightly pessimistic for English with OpenAI tokenizers

    def __init__(self) -> None:
        self.prompt_chars = 0.0
        self.prompt_tokens = 0.0
        self.min_chars_per_token = self.DEFAULT_CHARS_PER_TOKEN
        self._outputs: dict[str, tuple[float, float]] = {}  # prompt name -> (tokens, answers)
        self.seeded: set[str] = set()  # prompt names whose cached history is in (once per run)

    def observe(self, prompt_name: str, *, prompt_chars: int, input_tokens: int, output_tokens: int) -> None:
        """One answer with its real usage."""
        if prompt_chars > 0 and input_tokens > 0:
            self.prompt_chars += prompt_chars
            self.prompt_tokens += input_tokens
            self.min_chars_per_token = min(self.min_chars_per_token, prompt_chars / input_tokens)
        self._add_output(prompt_name, output_tokens, 1.0)

    def seed(self, prompt_name: str, *, answers: int, output_tokens: int, prompt_chars: int, input_tokens: int) -> None:
        """Totals of earlier answers (from the cache); prompt figures count only when both are known."""
        if answers <= 0:
            return
        if prompt_chars > 0 and input_tokens > 0:
            self.prompt_chars += prompt_chars
            self.prompt_tokens += input_tokens
        self._add_output(prompt_name, output_tokens, float(answers))

    def _add_output(self, prompt_name: str, tokens: float, answers: float) -> None:
        total, count = self._outputs.get(prompt_name, (0.0, 0.0))
        self._outputs[prompt_name] = (total + tokens, count + answers)

    @property
    def chars_per_token(self) -> float:
        if self.prompt_tokens <= 0:
            return self.DEFAULT_CHARS_PER_TOKEN
        return self.prompt_chars / self.prompt_tokens

    def expected_input_tokens(self, prompt_chars: int) -> int:
        return max(1, round(prompt_chars / self.chars_per_token))

    def worst_input_tokens(self, prompt_chars: int) -> int:
        return int(prompt_chars / self.min_chars_per_token) + 1

    def expected_output_tokens(self, prompt_name: str) -> float | None:
        """Mean output tokens of this prompt's answers, None before the first one."""
        tokens, count = self._outputs.get(prompt_name, (0.0, 0.0))
        return tokens / count if count else None

    def answers(self, prompt_name: str) -> float:
        return self._outputs.get(prompt_name, (0.0, 0.0))[1]


def expected_call_cost(
    prices: PriceTable,
    stats: JudgeStats,
    *,
    model: str,
    max_tokens: int,
    prompt_chars: int,
    prompt_name: str,
    default_output_tokens: float,
) -> tuple[float, float]:
    """(expected, worst) USD of one call: observed output tokens of the prompt, else the default."""
    observed = stats.expected_output_tokens(prompt_name)
    expected_out = min(float(max_tokens), default_output_tokens if observed is None else observed)
    expected = prices.cost(model, stats.expected_input_tokens(prompt_chars), expected_out)
    worst = prices.cost(model, stats.worst_input_tokens(prompt_chars), max_tokens)
    return expected, worst


@dataclass
class Reservation:
    expected: float
    worst: float


class RunBudget:
    """The judge budget of one run, shared by all judge metrics (lives in `MetricContext.shared`).

    Once a call is deferred, the budget is closed for the rest of the run: later (perhaps
    cheaper) calls are deferred too, so "budget reached" means the same thing for every metric.
    Everything runs on one event loop, so checks and updates need no lock (no await between them).
    """

    def __init__(self, limit_usd: float | None) -> None:
        self.limit_usd = limit_usd
        self.spent_usd = 0.0
        self.expected_in_flight = 0.0
        self.worst_in_flight = 0.0
        self.in_flight = 0
        self.exhausted = False
        self.calls = 0
        self.refused = 0  # calls deferred because the budget could not cover them
        self.waited = 0  # calls that waited for calls in flight to settle before going ahead
        self.deferred_items: set[str] = set()  # ids of items a metric deferred for the budget
        self._settled = asyncio.Event()

    async def reserve(self, expected: float, worst: float | None = None) -> Reservation:
        """Admit a call costing `expected` (at most `worst`), wait for money in flight, or raise BudgetExhausted."""
        worst = max(expected, worst if worst is not None else expected)
        limit = self.limit_usd
        waited = False
        while True:
            if limit is not None and self.exhausted:
                self.refused += 1
                raise BudgetExhausted(self.stop_message())
            fits = self.spent_usd + self.expected_in_flight + expected <= (limit or 0.0) + 1e-12
            safe = self.spent_usd + self.worst_in_flight <= (limit or 0.0) + 1e-12
            if limit is None or (fits and safe):
                self.expected_in_flight += expected
                self.worst_in_flight += worst
                self.in_flight += 1
                return Reservation(expected, worst)
            if self.in_flight == 0:  # nothing will settle: the money is not there
                self.exhausted = True
                self.refused += 1
                raise BudgetExhausted(self.stop_message())
            if not waited:
                waited = True
                self.waited += 1
            await self._settled.wait()  # a call in flight settles: spent and in-flight figures change

    def settle(self, reservation: Reservation, actual: float) -> None:
        """Replace the reservation by the real cost (0 when the call failed before any usage)."""
        self.expected_in_flight = max(0.0, self.expected_in_flight - reservation.expected)
        self.worst_in_flight = max(0.0, self.worst_in_flight - reservation.worst)
        self.in_flight -= 1
        if self.in_flight == 0:  # no float dust left behind
            self.expected_in_flight = self.worst_in_flight = 0.0
        self.spent_usd += actual
        self.calls += 1
        settled, self._settled = self._settled, asyncio.Event()
        settled.set()  # wake the waiters, who check again

    @property
    def remaining_usd(self) -> float | None:
        return None if self.limit_usd is None else max(0.0, self.limit_usd - self.spent_usd)

    def stop_message(self) -> str:
        return (
            f"run budget of ${self.limit_usd or 0:.4f} reached: spent ${self.spent_usd:.4f}, "
            f"${self.remaining_usd or 0:.4f} left"
        )


def budget_stop_warning(limit_usd: float | None, spent_usd: float, deferred_items: int) -> str | None:
    """The run-level notice of a budget stop: spent, left, and how many items wait for the next run."""
    if limit_usd is None or deferred_items == 0:
        return None
    left = max(0.0, limit_usd - spent_usd)
    return (
        f"judge budget (evaluation.max_cost_usd ${limit_usd:.4f}) reached: spent ${spent_usd:.4f}, "
        f"${left:.4f} left; {deferred_items} item(s) deferred to the next run"
    )


def over_budget_warning(estimated_cost_usd: float | None, limit_usd: float | None) -> str | None:
    """Said before money is spent: the planned judge calls cost more than the run may spend."""
    if limit_usd is None or not estimated_cost_usd or estimated_cost_usd <= limit_usd:
        return None
    share = limit_usd / estimated_cost_usd
    return (
        f"estimated judge cost ${estimated_cost_usd:.4f} is above evaluation.max_cost_usd ${limit_usd:.4f}: "
        f"about {share:.0%} of the planned calls fit; the rest will be deferred to later runs"
    )


def judge_run_warnings(
    shared: Mapping[str, Any], *, estimated_cost_usd: float | None, limit_usd: float | None
) -> list[str]:
    """The judges' notices for a RunSummary: estimate above the budget, and the budget stop."""
    warnings = [over_budget_warning(estimated_cost_usd, limit_usd)]
    budget = shared.get(BUDGET_KEY)
    if isinstance(budget, RunBudget):
        warnings.append(budget_stop_warning(budget.limit_usd, budget.spent_usd, len(budget.deferred_items)))
    return [w for w in warnings if w]
