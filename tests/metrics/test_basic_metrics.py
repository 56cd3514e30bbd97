"""latency, length_constraint, non_empty on labelled examples."""

from __future__ import annotations

import math

import pytest

from shared.errors import ConfigError
from shared.evaluation.metric import MetricStatus

from .helpers import ONE_MB, make, score


@pytest.mark.parametrize(
    ("seconds", "passed"),
    [(0.0, True), (0.8, True), (2.0, True), (2.0001, False), (45.0, False)],
)
def test_latency_passes_within_budget(seconds: float, passed: bool) -> None:
    result = score(make("latency", max_seconds=2.0), latency=seconds)
    assert result.status is MetricStatus.OK
    assert result.score == seconds
    assert result.passed is passed
    assert result.threshold == 2.0


def test_latency_explicit_threshold_wins_over_max_seconds() -> None:
    result = score(make("latency", threshold=1.0, max_seconds=5.0), latency=3.0)
    assert result.passed is False


def test_latency_default_budget_is_ten_seconds() -> None:
    assert score(make("latency"), latency=9.9).passed is True
    assert score(make("latency"), latency=10.5).passed is False


def test_latency_missing_is_skipped_and_bad_values_are_error_rows() -> None:
    assert score(make("latency"), latency=None).status is MetricStatus.SKIPPED
    for bad in (-1.0, math.inf, math.nan):
        result = score(make("latency"), latency=bad)
        assert result.status is MetricStatus.ERROR
        assert result.score is None
        assert "latency" in (result.error or "")


def test_latency_rejects_non_positive_budget_at_config_load() -> None:
    with pytest.raises(ConfigError, match="max_seconds"):
        make("latency", max_seconds=0)


@pytest.mark.parametrize(
    ("params", "text", "expected"),
    [
        ({"min_chars": 5, "max_chars": 10}, "hello", 1.0),
        ({"min_chars": 5, "max_chars": 10}, "hello worl", 1.0),
        ({"min_chars": 5, "max_chars": 10}, "hey", 0.0),
        ({"min_chars": 5, "max_chars": 10}, "hello world!", 0.0),
        ({"min_chars": 5, "max_chars": 10}, "   hey   ", 0.0),  # surrounding whitespace does not count
        ({"min_words": 2, "max_words": 3}, "one two three", 1.0),
        ({"min_words": 2, "max_words": 3}, "one two three four", 0.0),
        ({"min_words": 2}, "one", 0.0),
        ({"max_chars": 4}, "żółć", 1.0),  # code points, not bytes
        ({"max_chars": 4}, "日本語です", 0.0),
        ({"max_chars": 20, "min_words": 3}, "one two three", 1.0),
        ({"max_chars": 10, "min_words": 3}, "one two three", 0.0),  # every bound must hold
    ],
)
def test_length_constraint(params: dict[str, object], text: str, expected: float) -> None:
    result = score(make("length_constraint", **params), actual_output=text)
    assert result.score == expected
    assert result.passed is (expected == 1.0)


def test_length_constraint_reports_length_and_handles_1mb() -> None:
    result = score(make("length_constraint", max_chars=4000), actual_output="x" * ONE_MB)
    assert result.score == 0.0
    assert result.signals == {"chars": ONE_MB}
    assert "1048576 chars > max 4000" in result.explanation
    words = score(make("length_constraint", max_words=10), actual_output="word " * (ONE_MB // 5))
    assert words.signals["words"] == ONE_MB // 5


def test_length_constraint_other_field_and_bad_bounds() -> None:
    metric = make("length_constraint", field="query", max_chars=3)
    assert score(metric, query="abcd", actual_output="ok").score == 0.0
    # the skip check follows the configured field, not actual_output
    assert score(metric, actual_output="ok").status is MetricStatus.SKIPPED
    with pytest.raises(ConfigError, match="min_chars"):
        make("length_constraint", min_chars=10, max_chars=5)
    with pytest.raises(ConfigError, match="at least one"):
        make("length_constraint")
    with pytest.raises(ConfigError, match="max_tokens"):
        make("length_constraint", max_tokens=5)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The application is approved.", 1.0),
        ("0", 1.0),
        ("é", 1.0),
        ("🙂", 1.0),
        (None, 0.0),
        ("", 0.0),
        ("   \n\t ", 0.0),
        ("\u200b\u200b\ufeff", 0.0),
        ("null", 0.0),
        (" NULL ", 0.0),
        ("{}", 0.0),
        ("[]", 0.0),
    ],
)
def test_non_empty(output: str | None, expected: float) -> None:
    result = score(make("non_empty"), actual_output=output)
    assert result.status is MetricStatus.OK  # a missing output is a failure, never a skip
    assert result.score == expected
    assert result.passed is (expected == 1.0)


def test_non_empty_custom_placeholders_and_field() -> None:
    metric = make("non_empty", field="query", placeholders=["-"])
    assert score(metric, query="-").score == 0.0
    assert score(metric, query="null").score == 1.0
    assert score(make("non_empty"), actual_output=" " * ONE_MB + "x").score == 1.0
