"""exact_match and levenshtein_ratio against expected_output."""

from __future__ import annotations

import random
import time

import pytest

from shared.evaluation.metric import MetricStatus
from shared.metrics.reference import levenshtein_distance, levenshtein_ratio

from .helpers import ONE_MB, make, score


def _textbook_levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("", "", 0),
        ("", "abc", 3),
        ("abc", "", 3),
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("approve", "approve", 0),
        ("approve", "decline", 6),
        ("日本語", "日本", 1),
        ("café", "cafe", 1),
        ("🙂🙂", "🙂", 1),
    ],
)
def test_levenshtein_distance_known_values(a: str, b: str, distance: int) -> None:
    assert levenshtein_distance(a, b) == distance
    assert levenshtein_distance(b, a) == distance


def test_bit_parallel_distance_equals_textbook_dp() -> None:
    rng = random.Random(7)
    for _ in range(1500):
        alphabet = rng.choice(["ab", "abcé", "abcdefghij 日"])
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert levenshtein_distance(a, b) == _textbook_levenshtein(a, b), (a, b)
    # longer than a machine word, to exercise big-int carries
    a = "".join(rng.choice("acgt") for _ in range(300))
    b = "".join(rng.choice("acgt") for _ in range(280))
    assert levenshtein_distance(a, b) == _textbook_levenshtein(a, b)


def test_levenshtein_ratio_definition() -> None:
    assert levenshtein_ratio("", "") == 1.0
    assert levenshtein_ratio("abc", "") == 0.0
    assert levenshtein_ratio("kitten", "sitting") == pytest.approx(1 - 3 / 7)


@pytest.mark.parametrize(
    ("actual", "expected", "params", "match"),
    [
        ("Approve", "Approve", {}, True),
        ("  Approve \n", "Approve", {}, True),
        ("Approve  the   risk", "Approve the risk", {}, True),
        ("approve", "Approve", {}, False),
        ("approve", "Approve", {"case_sensitive": False}, True),
        ("Approve.", "Approve", {}, False),
        ("Approve.", "Approve", {"ignore_punctuation": True}, True),
        ("Ｒｅｆｅｒ", "Refer", {}, True),  # full-width forms, NFKC
        ("Ｒｅｆｅｒ", "Refer", {"unicode_nfkc": False}, False),
        ("Straße", "STRASSE", {"case_sensitive": False}, True),
        ("Approve", "Decline", {}, False),
        ("Approve the risk", "Approve the risk", {"normalize_whitespace": False}, True),
        ("Approve  the risk", "Approve the risk", {"normalize_whitespace": False}, False),
    ],
)
def test_exact_match(actual: str, expected: str, params: dict[str, object], match: bool) -> None:
    result = score(make("exact_match", **params), actual_output=actual, expected_output=expected)
    assert result.score == (1.0 if match else 0.0)
    assert result.passed is match


def test_exact_match_needs_a_reference_and_fails_an_empty_answer() -> None:
    assert score(make("exact_match"), actual_output="x").status is MetricStatus.SKIPPED
    for empty in (None, "", "   "):
        result = score(make("exact_match"), actual_output=empty, expected_output="x")
        assert result.status is MetricStatus.OK and result.score == 0.0 and result.passed is False
        ratio = score(make("levenshtein_ratio"), actual_output=empty, expected_output="Paris")
        assert ratio.status is MetricStatus.OK and ratio.score == 0.0 and ratio.passed is False


@pytest.mark.parametrize(
    ("actual", "expected", "low", "high", "passed"),
    [
        ("The risk is approved.", "The risk is approved.", 1.0, 1.0, True),
        ("The risk is APPROVED.", "the risk is approved.", 1.0, 1.0, True),  # case-insensitive default
        ("The risk is approved", "The risk is approved.", 0.95, 0.96, True),
        ("Refer to underwriter.", "Decline: flood zone.", 0.0, 0.4, False),
        ("abc", "xyz", 0.0, 0.0, False),
    ],
)
def test_levenshtein_ratio_metric(actual: str, expected: str, low: float, high: float, passed: bool) -> None:
    result = score(make("levenshtein_ratio"), actual_output=actual, expected_output=expected)
    assert result.score is not None
    assert low <= result.score <= high
    assert result.passed is passed


def test_levenshtein_ratio_1mb_is_truncated_and_fast() -> None:
    rng = random.Random(3)
    big_a = "".join(rng.choices("abcdefgh ", k=ONE_MB))
    big_b = "".join(rng.choices("abcdefgh ", k=ONE_MB))
    started = time.perf_counter()
    result = score(make("levenshtein_ratio"), actual_output=big_a, expected_output=big_b)
    assert time.perf_counter() - started < 5
    assert result.signals["truncated"] is True
    assert result.signals["max_len"] == 10_000
    assert 0.0 < (result.score or 0.0) < 0.9
    # identical huge texts short-circuit
    same = score(make("levenshtein_ratio"), actual_output=big_a, expected_output=big_a)
    assert same.score == 1.0
