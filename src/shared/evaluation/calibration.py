"""Calibration: does a judge agree with people? Plain data in, figures out.

A judge score and a human label meet on the same subject (a trace, or an observation for
observation-level monitors). Per metric and metric version this module reports how many items
were labelled, how often judge and people agree on pass/fail at the metric's threshold (with
Cohen's kappa, which discounts the agreement two raters would reach by chance), the label kappa
of categorical judges, the Spearman and Pearson correlations of numeric scores, the confusion
matrix at the threshold, and the threshold that would have agreed with people most often. Every
figure has a 95% bootstrap interval (fixed seed).

How a human label reads: a number or a boolean (1/0) is on the metric's own scale and passes or
fails the way the metric's scores do (direction and threshold; `human_threshold` when people
score on another scale, e.g. 1..5); words such as pass/fail, yes/no, true/false, good/bad count
as 1/0; any other string is a category, compared with a categorical judge's label.

Reading scores from Postgres or Langfuse is `shared.monitoring.calibration`'s job; this module
only computes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from shared.evaluation.agreement import (
    BOOTSTRAP_RESAMPLES,
    Figure,
    IntArray,
    agreement,
    best_threshold,
    cohen_kappa,
    figure,
    pass_kappa,
    pearson,
    spearman,
)

Subject = tuple[str, str]  # ("trace", trace id) or ("observation", observation id)

PASS_WORDS = frozenset({"true", "pass", "passed", "yes", "good", "correct", "ok", "1"})
FAIL_WORDS = frozenset({"false", "fail", "failed", "no", "bad", "incorrect", "not ok", "0"})
BOOLEAN_HUMAN_THRESHOLD = 0.5  # a 1/0 label against a metric without a threshold


@dataclass(frozen=True)
class JudgeScore:
    subject: Subject
    metric: str
    version: str
    score: float | None = None
    passed: bool | None = None
    threshold: float | None = None
    label: str | None = None
    scored_at: datetime | None = None


@dataclass(frozen=True)
class HumanLabel:
    subject: Subject
    value: float | str
    at: datetime
    source: str = ""


@dataclass(frozen=True)
class MetricFacts:
    """What the monitor's config says about a metric (for metrics no longer configured: defaults)."""

    name: str
    score_type: str = "numeric"
    direction: str = "higher_is_better"
    threshold: float | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.direction != "lower_is_better"


@dataclass
class VersionCalibration:
    """The figures of one metric version against the human labels of the same subjects."""

    metric: str
    version: str
    score_type: str
    n: int
    threshold: float | None = None
    agreement: Figure | None = None  # pass/fail, at the metric's threshold
    kappa: Figure | None = None  # pass/fail
    label_agreement: Figure | None = None  # categorical judges
    kappa_categorical: Figure | None = None
    spearman: Figure | None = None
    pearson: Figure | None = None
    confusion: dict[str, int] | None = None
    best_threshold: Figure | None = None
    best_agreement: Figure | None = None
    last_scored_at: datetime | None = None

    @property
    def headline_kappa(self) -> float | None:
        """The kappa a floor is checked against: labels for categorical judges, else pass/fail."""
        if self.score_type == "categorical" and self.kappa_categorical is not None:
            return self.kappa_categorical.value
        return self.kappa.value if self.kappa is not None else None

    def as_dict(self) -> dict[str, Any]:
        figures = (
            "agreement",
            "kappa",
            "label_agreement",
            "kappa_categorical",
            "spearman",
            "pearson",
            "best_threshold",
            "best_agreement",
        )
        out: dict[str, Any] = {
            "metric": self.metric,
            "version": self.version,
            "score_type": self.score_type,
            "n": self.n,
            "threshold": self.threshold,
        }
        for name in figures:
            value = getattr(self, name)
            out[name] = value.as_dict() if value is not None else None
        out["confusion"] = self.confusion
        out["last_scored_at"] = self.last_scored_at.isoformat() if self.last_scored_at else None
        return out


@dataclass
class Pairing:
    """Judge scores matched with the latest human label of their subject."""

    by_version: dict[tuple[str, str], list[tuple[JudgeScore, HumanLabel]]] = field(default_factory=dict)
    labels_read: int = 0
    labelled_subjects: int = 0
    unmatched_subjects: int = 0  # labelled, but no judge score of this monitor on them


def latest_labels(labels: Iterable[HumanLabel]) -> dict[Subject, HumanLabel]:
    """One label per subject: the most recent (a reviewer who changed their mind is right the second time)."""
    latest: dict[Subject, HumanLabel] = {}
    for label in labels:
        seen = latest.get(label.subject)
        if seen is None or label.at > seen.at:
            latest[label.subject] = label
    return latest


def pair_up(judges: Iterable[JudgeScore], labels: Iterable[HumanLabel]) -> Pairing:
    """Match each (subject, metric, version)'s latest judge score with its subject's latest label."""
    label_list = list(labels)
    by_subject = latest_labels(label_list)
    newest: dict[tuple[Subject, str, str], JudgeScore] = {}
    for judge in judges:
        if judge.subject not in by_subject:
            continue
        key = (judge.subject, judge.metric, judge.version)
        seen = newest.get(key)
        if seen is None or _after(judge.scored_at, seen.scored_at):
            newest[key] = judge
    pairing = Pairing(labels_read=len(label_list), labelled_subjects=len(by_subject))
    for (subject, metric, version), judge in sorted(newest.items(), key=lambda kv: kv[0]):
        pairing.by_version.setdefault((metric, version), []).append((judge, by_subject[subject]))
    matched = {subject for subject, _, _ in newest}
    pairing.unmatched_subjects = len(by_subject) - len(matched)
    return pairing


def calibrate(
    pairing: Pairing,
    facts: Mapping[str, MetricFacts],
    *,
    human_threshold: float | None = None,
    intervals: bool = True,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> list[VersionCalibration]:
    """Figures per (metric, version), ordered by metric then most recent version first."""
    out = [
        calibrate_version(
            facts.get(metric) or MetricFacts(metric),
            version,
            pairs,
            human_threshold=human_threshold,
            intervals=intervals,
            resamples=resamples,
        )
        for (metric, version), pairs in pairing.by_version.items()
    ]
    return sorted(out, key=lambda v: (v.metric, -(v.last_scored_at.timestamp() if v.last_scored_at else 0.0)))


def calibrate_version(
    facts: MetricFacts,
    version: str,
    pairs: list[tuple[JudgeScore, HumanLabel]],
    *,
    human_threshold: float | None = None,
    intervals: bool = True,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> VersionCalibration:
    threshold = _threshold_of(facts, pairs)
    stamps = [j.scored_at for j, _ in pairs if j.scored_at is not None]
    result = VersionCalibration(
        metric=facts.name,
        version=version,
        score_type=facts.score_type,
        n=len(pairs),
        threshold=threshold,
        last_scored_at=max(stamps) if stamps else None,
    )
    human_cut = human_threshold if human_threshold is not None else threshold

    def fig(statistic: Any, n: int) -> Figure | None:
        return figure(statistic, n, intervals=intervals, resamples=resamples)

    # Pass/fail at the metric's threshold.
    verdicts = [
        (judge_pass, human_pass, j.score)
        for j, h in pairs
        if (judge_pass := _judge_passed(j, facts, threshold)) is not None
        and (human_pass := _human_passed(h.value, facts, human_cut)) is not None
    ]
    if verdicts:
        judge_ok = np.array([v[0] for v in verdicts], dtype=np.bool_)
        human_ok = np.array([v[1] for v in verdicts], dtype=np.bool_)
        result.agreement = fig(lambda i: agreement(judge_ok[i], human_ok[i]), len(verdicts))
        result.kappa = fig(lambda i: pass_kappa(judge_ok[i], human_ok[i]), len(verdicts))
        result.confusion = {
            "both_pass": int(np.sum(judge_ok & human_ok)),
            "judge_pass_human_fail": int(np.sum(judge_ok & ~human_ok)),
            "judge_fail_human_pass": int(np.sum(~judge_ok & human_ok)),
            "both_fail": int(np.sum(~judge_ok & ~human_ok)),
        }
        scored = [(float(s), h) for _, h, s in verdicts if s is not None and math.isfinite(s)]
        if scored and facts.score_type != "categorical":
            scores = np.array([s for s, _ in scored], dtype=np.float64)
            human_passes = np.array([h for _, h in scored], dtype=np.bool_)
            swept: dict[bytes, tuple[float, float] | None] = {}  # both figures resample the same rows

            def sweep(i: IntArray) -> tuple[float, float] | None:
                key = i.tobytes()
                if key not in swept:
                    swept[key] = best_threshold(
                        scores[i], human_passes[i], higher_is_better=facts.higher_is_better, prefer=threshold
                    )
                return swept[key]

            result.best_threshold = fig(lambda i: _first(sweep(i)), len(scored))
            result.best_agreement = fig(lambda i: _second(sweep(i)), len(scored))

    # Labels, for categorical judges.
    labelled = [(j.label, h.value) for j, h in pairs if j.label is not None and isinstance(h.value, str)]
    if labelled and facts.score_type == "categorical":
        categories = sorted({c for pair in labelled for c in pair})
        code = {c: k for k, c in enumerate(categories)}
        judge_codes = np.array([code[a] for a, _ in labelled], dtype=np.int64)
        human_codes = np.array([code[b] for _, b in labelled], dtype=np.int64)
        k = len(categories)
        result.label_agreement = fig(lambda i: agreement(judge_codes[i], human_codes[i]), len(labelled))
        result.kappa_categorical = fig(lambda i: cohen_kappa(judge_codes[i], human_codes[i], k), len(labelled))

    # Numbers: correlation of the judge's score with the human value.
    numeric = [
        (float(j.score), value)
        for j, h in pairs
        if j.score is not None and math.isfinite(j.score) and (value := human_number(h.value)) is not None
    ]
    if numeric and facts.score_type != "categorical":
        x = np.array([a for a, _ in numeric], dtype=np.float64)
        y = np.array([b for _, b in numeric], dtype=np.float64)
        result.spearman = fig(lambda i: spearman(x[i], y[i]), len(numeric))
        result.pearson = fig(lambda i: pearson(x[i], y[i]), len(numeric))
    return result


def human_number(value: float | str) -> float | None:
    """A label as a number: numbers as they are, pass/fail words as 1/0, other strings None."""
    if isinstance(value, float | int):
        return float(value) if math.isfinite(value) else None
    word = value.strip().lower()
    if word in PASS_WORDS:
        return 1.0
    if word in FAIL_WORDS:
        return 0.0
    return None


def _human_passed(value: float | str, facts: MetricFacts, threshold: float | None) -> bool | None:
    number = human_number(value)
    if number is None:
        return None
    cut = threshold
    if cut is None:
        if isinstance(value, str) or number in (0.0, 1.0):
            cut = BOOLEAN_HUMAN_THRESHOLD
        else:
            return None
    return number >= cut if facts.higher_is_better else number <= cut


def _judge_passed(judge: JudgeScore, facts: MetricFacts, threshold: float | None) -> bool | None:
    if judge.passed is not None:
        return judge.passed
    if judge.score is None or threshold is None or not math.isfinite(judge.score):
        return None
    return judge.score >= threshold if facts.higher_is_better else judge.score <= threshold


def _threshold_of(facts: MetricFacts, pairs: list[tuple[JudgeScore, HumanLabel]]) -> float | None:
    """The threshold the version was scored with (stored with its scores), else the configured one."""
    stored = [j.threshold for j, _ in pairs if j.threshold is not None]
    return stored[0] if stored else facts.threshold


def _after(a: datetime | None, b: datetime | None) -> bool:
    return b is None or (a is not None and a > b)


def _first(pair: tuple[float, float] | None) -> float | None:
    return pair[0] if pair else None


def _second(pair: tuple[float, float] | None) -> float | None:
    return pair[1] if pair else None
