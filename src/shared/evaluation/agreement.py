"""Agreement statistics between a judge and people, with bootstrap intervals (numpy only).

Every function takes plain arrays and returns None when the figure is undefined on that data
(Cohen's kappa when both raters always give the same single answer, a correlation when one side
never varies), so callers never divide by zero or report NaN as a number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # fixed: the same data gives the same interval on every machine
INTERVAL = 0.95

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class Figure:
    """A figure with its 95% bootstrap interval (None bounds when it could not be resampled)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0

    def as_dict(self) -> dict[str, float | int | None]:
        return {"value": _round(self.value), "low": _round(self.low), "high": _round(self.high), "n": self.n}


def agreement(a: NDArray[Any], b: NDArray[Any]) -> float | None:
    """Share of rows where both raters gave the same answer (pass/fail or category code)."""
    return float(np.mean(a == b)) if len(a) else None


def cohen_kappa(a: IntArray, b: IntArray, categories: int) -> float | None:
    """Cohen's kappa of two raters' category codes (0 .. categories-1)."""
    n = len(a)
    if n == 0:
        return None
    table = np.bincount(a * categories + b, minlength=categories * categories).reshape(categories, categories)
    observed = np.trace(table) / n
    expected = float(table.sum(axis=1) @ table.sum(axis=0)) / (n * n)
    if expected >= 1.0 - 1e-12:
        return None
    return float((observed - expected) / (1.0 - expected))


def pass_kappa(a: BoolArray, b: BoolArray) -> float | None:
    return cohen_kappa(a.astype(np.int64), b.astype(np.int64), 2)


def pearson(x: FloatArray, y: FloatArray) -> float | None:
    if len(x) < 2:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt((dx @ dx) * (dy @ dy)))
    if denominator <= 1e-12:
        return None
    return float(np.clip((dx @ dy) / denominator, -1.0, 1.0))


def spearman(x: FloatArray, y: FloatArray) -> float | None:
    """Pearson of the ranks, ties sharing their average rank."""
    return pearson(average_ranks(x), average_ranks(y))


def average_ranks(x: FloatArray) -> FloatArray:
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    starts_group = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.append(starts[1:], len(x))
    mean_rank = (starts + ends - 1) / 2.0 + 1.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = mean_rank[group]
    return ranks


def best_threshold(
    scores: FloatArray, human_pass: BoolArray, *, higher_is_better: bool, prefer: float | None = None
) -> tuple[float, float] | None:
    """(threshold, agreement): the observed judge score that, used as the threshold, agrees with
    people most often. Ties go to the threshold nearest `prefer` (the configured one), then the lowest."""
    if len(scores) == 0:
        return None
    values, inverse = np.unique(scores, return_inverse=True)
    passes = np.bincount(inverse, weights=human_pass.astype(np.float64), minlength=len(values))
    fails = np.bincount(inverse, weights=(~human_pass).astype(np.float64), minlength=len(values))
    if higher_is_better:  # judge passes when score >= t
        agree = np.cumsum(passes[::-1])[::-1] + np.concatenate(([0.0], np.cumsum(fails)[:-1]))
    else:  # judge passes when score <= t
        agree = np.cumsum(passes) + np.concatenate((np.cumsum(fails[::-1])[::-1][1:], [0.0]))
    best = agree.max()
    candidates = np.flatnonzero(agree >= best - 1e-9)
    if prefer is not None:
        candidates = candidates[np.argsort(np.abs(values[candidates] - prefer), kind="mergesort")]
    chosen = int(candidates[0])
    return float(values[chosen]), float(best / len(scores))


def bootstrap(
    statistic: Callable[[IntArray], float | None], n: int, *, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float | None, float | None]:
    """Percentile interval of `statistic(indices)` over resamples of 0..n-1 (fixed seed).

    Resamples where the statistic is undefined are left out; with fewer than half defined the
    interval is unknown (None, None).
    """
    if n < 2 or resamples < 1:
        return None, None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(0, n, size=(resamples, n))
    values = [statistic(row) for row in draws]
    finite = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(finite) < resamples / 2:
        return None, None
    tail = (1.0 - INTERVAL) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def figure(
    statistic: Callable[[IntArray], float | None], n: int, *, intervals: bool, resamples: int = BOOTSTRAP_RESAMPLES
) -> Figure | None:
    """The statistic on all n rows, with its bootstrap interval when `intervals`; None when undefined."""
    value = statistic(np.arange(n, dtype=np.int64)) if n else None
    if value is None:
        return None
    low, high = bootstrap(statistic, n, resamples=resamples) if intervals else (None, None)
    return Figure(value, low, high, n)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
