"""The few statistics a monitor report needs: intervals and "worse than usual, not by chance" tests.

Written here rather than taken from scipy: the formulas are short and standard (Wilson score
interval, normal interval of a mean, two-proportion z-test, Welch's test with a normal tail for the
sample sizes a monitor alerts on, the beta-binomial tail, DerSimonian-Laird's between-run
variance), and scipy would be the runtime's largest dependency for them.

Baseline alerts (docs/alerts.md) use `rate_worse_p_value` for rates and `mean_shift_p_value` for
means, both widened by `between_run_variance` so that "usual" includes how much runs already
differ from one another, not only the sampling noise of one run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    # the interval always holds the observed rate; clamp away float noise at 0% and 100%
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


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


def mean_shift_p_value(
    now: RunningMoments, base: RunningMoments, *, higher_is_worse: bool, between_runs: float = 0.0
) -> float | None:
    """One-sided p-value that this run's mean moved in the bad direction (Welch, normal tail).

    `between_runs` (the baseline runs' spread beyond sampling noise, `between_run_variance`) is
    added to the variance: a run is compared with what a usual run looks like, not with the
    pooled mean alone.
    """
    if now.n < 2 or base.n < 2:
        return None
    se = math.sqrt(now.variance / now.n + base.variance / base.n + max(0.0, between_runs))
    diff = now.mean - base.mean if higher_is_worse else base.mean - now.mean
    if se == 0:
        return 0.0 if diff > 0 else 1.0
    return 1 - _STANDARD_NORMAL.cdf(diff / se)


def rate_worse_p_value(
    bad_now: int, n_now: int, bad_base: int, n_base: int, *, between_runs: float = 0.0
) -> float | None:
    """One-sided p-value that this run's bad rate is above the baseline's: P(a usual run is this bad).

    The two-proportion comparison done exactly: if nothing changed, this run's bad count follows
    the baseline's beta-binomial predictive distribution (the baseline rate with its uncertainty,
    Beta(bad + 1/2, good + 1/2), Jeffreys' prior). The normal approximation of the z-test fires far
    too often on rare events (4 PII leaks in 200 against a usual 1 in 200: z-test p = 0.002, exact
    p = 0.02). When earlier runs spread more than sampling explains (`between_runs`, a variance of
    the run rate), the Beta is widened to that spread.
    """
    if n_now <= 0 or n_base <= 0:
        return None
    a, b = bad_base + 0.5, n_base - bad_base + 0.5
    if between_runs > 0:
        rate = a / (a + b)
        target = rate * (1 - rate) / (a + b + 1) + between_runs
        concentration = max(1.0, rate * (1 - rate) / target - 1)
        a, b = rate * concentration, (1 - rate) * concentration
    return _beta_binomial_upper_tail(bad_now, n_now, a, b)


def _beta_binomial_upper_tail(x: int, n: int, a: float, b: float) -> float:
    """P(X >= x) for X ~ BetaBinomial(n, a, b), summed in log space over the terms that matter."""
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    mean = n * a / (a + b)
    sd = math.sqrt(n * a * b * (a + b + n) / ((a + b) ** 2 * (a + b + 1)))
    reach = 40 * sd + 10  # the mass beyond 40 standard deviations is far below double precision
    if x > mean + reach:
        return 0.0
    log_norm = math.lgamma(n + 1) - math.lgamma(a) - math.lgamma(b) + math.lgamma(a + b) - math.lgamma(a + b + n)

    def log_pmf(k: int) -> float:
        return log_norm - math.lgamma(k + 1) - math.lgamma(n - k + 1) + math.lgamma(k + a) + math.lgamma(n - k + b)

    if x <= mean:  # the lower side is the shorter sum: P(X >= x) = 1 - P(X < x)
        terms = [log_pmf(k) for k in range(max(0, math.floor(mean - reach)), x)]
        return min(1.0, max(0.0, 1.0 - _exp_sum(terms)))
    terms = [log_pmf(k) for k in range(x, min(n, math.ceil(mean + reach)) + 1)]
    return min(1.0, _exp_sum(terms))


def _exp_sum(log_terms: list[float]) -> float:
    if not log_terms:
        return 0.0
    top = max(log_terms)
    return math.exp(top) * math.fsum(math.exp(t - top) for t in log_terms)


def between_run_variance(estimates: Sequence[tuple[float, float]]) -> float:
    """How much runs differ beyond their sampling noise (DerSimonian-Laird tau squared).

    `estimates` holds each run's (value, sampling variance of that value). Zero when the runs
    agree as well as their sample sizes allow, or when there are fewer than 3 runs to tell.
    """
    usable = [(value, variance) for value, variance in estimates if variance > 0]
    if len(usable) < 3:
        return 0.0
    weights = [1 / variance for _, variance in usable]
    total = math.fsum(weights)
    centre = math.fsum(w * value for w, (value, _) in zip(weights, usable, strict=True)) / total
    q = math.fsum(w * (value - centre) ** 2 for w, (value, _) in zip(weights, usable, strict=True))
    scale = total - math.fsum(w * w for w in weights) / total
    return max(0.0, (q - (len(usable) - 1)) / scale) if scale > 0 else 0.0


def rate_estimates(runs: Sequence[tuple[int, int]]) -> list[tuple[float, float]]:
    """(rate, sampling variance) per run from (bad, n), at the pooled rate (stable for small runs)."""
    total_bad = sum(bad for bad, _ in runs)
    total = sum(n for _, n in runs)
    if total == 0:
        return []
    pooled = total_bad / total
    return [(bad / n, pooled * (1 - pooled) / n) for bad, n in runs if n > 0]


def mean_estimates(runs: Sequence[RunningMoments]) -> list[tuple[float, float]]:
    """(mean, sampling variance) per run, with the runs' pooled within-run variance."""
    sized = [m for m in runs if m.n > 0]
    dof = sum(m.n - 1 for m in sized)
    if dof <= 0:
        return []
    within = math.fsum(m.m2 for m in sized) / dof
    return [(m.mean, within / m.n) for m in sized]
