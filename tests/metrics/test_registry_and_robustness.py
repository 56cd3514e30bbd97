"""Every shared heuristic is registered with documented semantics and survives hostile input."""

from __future__ import annotations

import json
import math

import pytest

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricStatus, load_builtin_metrics, metric_registry

from .helpers import ONE_MB, make, run_rows

HEURISTICS = {
    "latency": {},
    "length_constraint": {"max_chars": 4000},
    "non_empty": {},
    "json_valid": {},
    "regex_match": {"pattern": r"decision"},
    "contains": {"keywords": ["approve", "decline", "refer"]},
    "exact_match": {},
    "levenshtein_ratio": {},
    "citation_validity": {},
    "citation_coverage": {},
    "grounding_overlap": {},
    "pii_leakage": {},
    "prompt_injection_markers": {},
    "refusal": {},
}


def test_all_heuristics_registered_with_declared_semantics() -> None:
    load_builtin_metrics()
    assert set(HEURISTICS) <= set(metric_registry.keys())
    for key in HEURISTICS:
        cls = metric_registry.resolve(key)
        assert issubclass(cls, BaseMetric)
        assert cls.key == key
        assert cls.kind == "heuristic"
        assert cls.description
        assert cls.__doc__ and "pass" in cls.__doc__.lower(), f"{key} must document its pass rule"
        assert cls.default_threshold is not None
        low, high = cls.score_range
        assert low <= cls.default_threshold <= high


def test_unknown_param_is_a_config_error_listing_valid_params() -> None:
    from shared.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        make("contains", keywords=["x"], keyword_mode="any")
    assert info.value.choices is not None and "mode" in info.value.choices


HOSTILE_TEXTS = [
    "",
    " ",
    "\x00\x01\x02",
    "\ud800",  # lone surrogate
    "🙂" * 1000,
    "Zürich 東京 مرحبا Ελληνικά \u202e reversed",
    "[" * 10_000,
    "]" * 10_000 + "[1" * 5000,
    "{" * 50_000,
    "[1-999999] [0-0] [3–1] [;;] [,] [doc-] [a1,,b2]",
    "a@" * 20_000,
    "+1 " * 30_000,
    "4" * ONE_MB,
    "word. " * (ONE_MB // 6),
    "x" * ONE_MB,
    "\n" * ONE_MB,
]


@pytest.mark.parametrize("index", range(len(HOSTILE_TEXTS)))
def test_no_metric_crashes_on_hostile_text(index: int) -> None:
    text = HOSTILE_TEXTS[index]
    metrics = [make(key, **params) for key, params in HEURISTICS.items()]
    item = DatasetItem(
        id="hostile",
        query=text,
        actual_output=text,
        expected_output=text[:5000] + "!",
        retrieved_content=[text, "", "plain doc"],
        latency=1.5,
        additional_input={"retrieved_ids": [text[:10], None, 3]},
    )
    for row in run_rows([item], metrics):
        r = row.result
        assert r.status in (MetricStatus.OK, MetricStatus.SKIPPED), (row.metric_name, r.error)
        if r.score is not None:
            assert not math.isnan(r.score)
            low, high = metric_registry.resolve(row.metric_key).score_range
            assert low <= r.score <= high
        assert len(r.explanation) < 1000
        assert len(json.dumps(r.signals, default=str)) < 20_000


# What each heuristic says about an item that holds nothing at all. None: skipped (the check
# has no verdict without its input, e.g. no reference or no latency).
EMPTY_ITEM_VERDICTS: dict[str, float | None] = {
    "latency": None,
    "length_constraint": 1.0,  # 0 chars is within max_chars
    "non_empty": 0.0,
    "json_valid": 0.0,
    "regex_match": 0.0,
    "contains": 0.0,
    "exact_match": None,
    "levenshtein_ratio": None,
    "citation_validity": 1.0,  # when_no_citations: pass
    "citation_coverage": None,
    "grounding_overlap": None,
    "pii_leakage": 0.0,
    "prompt_injection_markers": 0.0,
    "refusal": 0.0,
}


def test_fully_empty_item_is_scored_where_a_verdict_exists_never_an_error() -> None:
    assert set(EMPTY_ITEM_VERDICTS) == set(HEURISTICS)
    metrics = [make(key, **params) for key, params in HEURISTICS.items()]
    by_key = {row.metric_key: row.result for row in run_rows([DatasetItem(id="empty")], metrics)}
    for key, expected in EMPTY_ITEM_VERDICTS.items():
        r = by_key[key]
        if expected is None:
            assert r.status is MetricStatus.SKIPPED, key
        else:
            assert (r.status, r.score) == (MetricStatus.OK, expected), key


@pytest.mark.parametrize("empty", [None, "", "  \n\t ", "\u200b"])
def test_an_empty_answer_is_scored_not_skipped(empty: str | None) -> None:
    """An empty answer counts in pass rates: failing checks fail it, leak checks find nothing."""
    metrics = [
        make("citation_validity", when_no_citations="fail"),
        make("citation_validity"),
        make("pii_leakage"),
        make("length_constraint", min_chars=1),
        make("contains", keywords=["approve"]),
        make("exact_match"),
        make("refusal"),
    ]
    item = DatasetItem(id="e", actual_output=empty, expected_output="approve", retrieved_content=["doc one"])
    got = [(row.metric_key, row.result.status, row.result.passed) for row in run_rows([item], metrics)]
    ok = MetricStatus.OK
    assert got == [
        ("citation_validity", ok, False),  # cites nothing: fails when citing is required
        ("citation_validity", ok, True),  # when_no_citations: pass
        ("pii_leakage", ok, True),  # no leak in an empty answer
        ("length_constraint", ok, False),
        ("contains", ok, False),
        ("exact_match", ok, False),
        ("refusal", ok, True),
    ]


def test_empty_answers_lower_the_citation_pass_rate() -> None:
    """3 empty answers of 10 with `when_no_citations: fail`: a 70% pass rate, not 100%."""
    items = [
        DatasetItem(id=str(i), actual_output="Covered [1]." if i < 7 else " ", retrieved_content=["doc"])
        for i in range(10)
    ]
    rows = run_rows(items, [make("citation_validity", when_no_citations="fail")])
    assert all(row.result.status is MetricStatus.OK for row in rows)
    assert sum(bool(row.result.passed) for row in rows) == 7
    assert [row.result.signals["empty"] for row in rows[7:]] == [True] * 3
