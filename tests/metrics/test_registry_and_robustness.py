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


def test_fully_empty_item_is_skipped_or_scored_never_an_error() -> None:
    metrics = [make(key, **params) for key, params in HEURISTICS.items()]
    by_key = {row.metric_key: row.result for row in run_rows([DatasetItem(id="empty")], metrics)}
    assert by_key["non_empty"].score == 0.0  # the one metric that must fail an empty item
    for key, r in by_key.items():
        if key != "non_empty":
            assert r.status is MetricStatus.SKIPPED, key
