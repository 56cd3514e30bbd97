"""The few statistics a monitor report needs: intervals and "worse than usual, not by chance" tests.

Written here rather than taken from scipy: the formulas are short and standard (Wilson score
interval, normal interval of a mean, two-proportion z-test, Welch's test with a normal tail for the
sample sizes a monitor alerts on), and scipy would be the runtime's largest dependency for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_STANDARD_NORMAL = NormalDist()


def z_for(confidence: float) -> float:
    """Two-sided z of a confidence level (0.95 -> 1.96)."""
    return _STANDARD_NORMAL.inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a pass rate: honest at 0%, 100% and small n (unlike p +- z*se)."""
    if n <= 0:
        return None
    z = z_for(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class RunningMoments:
    """Count, mean and variance in one pass (Welford), mergeable across chunks and runs."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def merge(self, other: RunningMoments) -> None:
        if other.n == 0:
            return
        total = self.n + other.n
        delta = other.mean - self.mean
        self.m2 += other.m2 + delta * delta * self.n * other.n / total
        self.mean += delta * other.n / total
        self.n = total

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0

    def interval(self, confidence: float = 0.95) -> tuple[float, float] | None:
        """Normal interval of the mean (the t correction is negligible at report sizes)."""
        if self.n == 0:
            return None
        half = z_for(confidence) * math.sqrt(self.variance / self.n) if self.n > 1 else 0.0
        return self.mean - half, self.mean + half


def two_proportion_p_value(bad_now: int, n_now: int, bad_base: int, n_base: int) -> float | None:
    """One-sided p-value that this run's bad rate is above the baseline's (pooled z-test)."""
    if n_now == 0 or n_base == 0:
        return None
    pooled = (bad_now + bad_base) / (n_now + n_base)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_now + 1 / n_base))
    if se == 0:
        return 1.0 if bad_now / n_now <= bad_base / n_base else 0.0
    z = (bad_now / n_now - bad_base / n_base) / se
    return 1 - _STANDARD_NORMAL.cdf(z)


def mean_shift_p_value(now: RunningMoments, base: RunningMoments, *, higher_is_worse: bool) -> float | None:
    """One-sided p-value that this run's mean moved in the bad direction (Welch, normal tail)."""
    if now.n < 2 or base.n < 2:
        return None
    se = math.sqrt(now.variance / now.n + base.variance / base.n)
    diff = now.mean - base.mean if higher_is_worse else base.mean - now.mean
    if se == 0:
        return 0.0 if diff > 0 else 1.0
    return 1 - _STANDARD_NORMAL.cdf(diff / se)
