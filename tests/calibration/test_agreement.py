"""The statistics on plain data: categorical judges, lower-is-better flags, undefined figures."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from shared.evaluation.agreement import best_threshold, cohen_kappa, spearman
from shared.evaluation.calibration import HumanLabel, JudgeScore, MetricFacts, calibrate_version

T = datetime(2026, 11, 1, tzinfo=UTC)


def pairs(judges: list[JudgeScore], values: list[float | str]) -> list[tuple[JudgeScore, HumanLabel]]:
    return [(j, HumanLabel(j.subject, v, T)) for j, v in zip(judges, values, strict=True)]


def test_cohen_kappa_matches_a_hand_computed_table() -> None:
    # 20 both yes, 5 judge yes/human no, 10 judge no/human yes, 15 both no: po 0.7, pe 0.5, kappa 0.4
    a = np.array([1] * 25 + [0] * 25)
    b = np.array([1] * 20 + [0] * 5 + [1] * 10 + [0] * 15)
    assert cohen_kappa(a, b, 2) == pytest.approx(0.4)
    assert cohen_kappa(np.ones(5, dtype=np.int64), np.ones(5, dtype=np.int64), 2) is None  # one answer only


def test_spearman_handles_ties() -> None:
    assert spearman(np.array([1.0, 2.0, 2.0, 3.0]), np.array([10.0, 20.0, 20.0, 30.0])) == 1.0
    assert spearman(np.array([1.0, 1.0]), np.array([1.0, 2.0])) is None  # no variation


def test_best_threshold_for_both_directions() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    people = np.array([False, False, False, True, True, True])
    assert best_threshold(scores, people, higher_is_better=True, prefer=0.5) == (0.6, 1.0)
    assert best_threshold(scores, ~people, higher_is_better=False, prefer=0.5) == (0.3, 1.0)


def test_categorical_judge_is_compared_on_labels() -> None:
    labels = ["polite", "rude", "neutral", "polite", "rude", "neutral"] * 5
    judges = [JudgeScore(("trace", f"t{i}"), "tone", "v1", label=label) for i, label in enumerate(labels)]
    facts = MetricFacts("tone", score_type="categorical")
    same = calibrate_version(facts, "v1", pairs(judges, list(labels)), resamples=50)
    assert same.kappa_categorical is not None and same.kappa_categorical.value == 1.0
    assert same.headline_kappa == 1.0 and same.spearman is None
    shifted = labels[1:] + labels[:1]
    other = calibrate_version(facts, "v1", pairs(judges, list(shifted)), resamples=50)
    assert other.label_agreement is not None and other.label_agreement.value == 0.0
    assert other.headline_kappa is not None and other.headline_kappa < 0


def test_a_flag_metric_reads_human_flags_on_its_own_scale() -> None:
    """A lower-is-better flag (1 is bad): a human 1 says 'flagged', which fails like the judge's 1."""
    flags = [1.0, 0.0] * 15
    judges = [
        JudgeScore(("trace", f"t{i}"), "pii", "v1", score=f, passed=f == 0.0, threshold=0.0)
        for i, f in enumerate(flags)
    ]
    facts = MetricFacts("pii", direction="lower_is_better", threshold=0.0)
    result = calibrate_version(facts, "v1", pairs(judges, ["yes" if f else "no" for f in flags]), resamples=50)
    assert result.kappa is not None and result.kappa.value == 1.0
    assert result.confusion == {
        "both_pass": 15,
        "judge_pass_human_fail": 0,
        "judge_fail_human_pass": 0,
        "both_fail": 15,
    }


def test_without_intervals_only_values() -> None:
    judges = [JudgeScore(("trace", f"t{i}"), "m", "v1", score=i / 10, threshold=0.5) for i in range(10)]
    result = calibrate_version(
        MetricFacts("m", threshold=0.5), "v1", pairs(judges, [i / 10 for i in range(10)]), intervals=False
    )
    assert result.kappa is not None and result.kappa.value == 1.0 and result.kappa.low is None
