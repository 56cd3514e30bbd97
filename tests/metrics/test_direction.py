"""Every metric says which way its score is good, and the user sees it everywhere a score is shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from implementations.athena.generate_traces import write_traces
from shared.cli import app
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import (
    BaseMetric,
    MetricResult,
    direction_label,
    load_builtin_metrics,
    metric,
    metric_registry,
)
from shared.monitoring.sinks.local import read_results
from tests.core.conftest import write_config

from .helpers import make, run_rows

runner = CliRunner()

# Flags (1.0 = the problem is there) and costs are lower-is-better; everything else higher.
LOWER_IS_BETTER = {
    "latency",
    "pii_leakage",
    "prompt_injection_markers",
    "refusal",
    "response_latency",
    "negative_feedback",
    "unresolved",
    "escalation",
}


def test_every_shared_metric_declares_a_direction_that_matches_its_pass_rule() -> None:
    load_builtin_metrics()
    import shared.metrics.slack  # noqa: F401  (registers the Slack metrics)

    for key in metric_registry:
        cls = metric_registry.resolve(key)
        if not cls.__module__.startswith("shared."):
            continue
        expected = "lower_is_better" if key in LOWER_IS_BETTER else "higher_is_better"
        assert cls.direction == expected, key
        assert cls.higher_is_better is (expected == "higher_is_better"), key
    pii = make("pii_leakage")
    assert pii.judge(0.0) is True and pii.judge(1.0) is False  # the direction drives the pass test


def test_direction_labels() -> None:
    assert direction_label("higher_is_better", "boolean") == "higher is better"
    assert direction_label("lower_is_better", "numeric") == "lower is better"
    assert direction_label("lower_is_better", "boolean") == "flag: 1 is bad"


def test_a_contradictory_declaration_is_refused() -> None:
    with pytest.raises(ValueError, match="contradicts"):

        @metric(key="test_contradiction", description="x", direction="lower_is_better", higher_is_better=True)
        class Contradiction(BaseMetric):
            async def execute(self, item: DatasetItem) -> MetricResult:
                return self.result(0.0)


def test_result_rows_and_summaries_carry_the_direction() -> None:
    from shared.evaluation.results import EvaluationResult

    items = [DatasetItem(id="a", actual_output="Call 555-013-2456."), DatasetItem(id="b", actual_output="ok")]
    rows = run_rows(items, [make("pii_leakage"), make("non_empty")])
    assert {(r.metric_key, r.as_record()["direction"]) for r in rows} == {
        ("pii_leakage", "lower_is_better"),
        ("non_empty", "higher_is_better"),
    }
    summary = EvaluationResult(rows=rows).summary()
    assert summary["pii_leakage"].direction == "lower_is_better" and summary["pii_leakage"].mean == 0.5
    assert summary["non_empty"].direction == "higher_is_better"


def test_metrics_command_shows_the_direction() -> None:
    listed = json.loads(runner.invoke(app, ["metrics", "--json"]).stdout)
    by_key = {row["key"]: row for row in listed}
    assert by_key["pii_leakage"]["direction"] == "lower_is_better"
    assert by_key["citation_validity"]["direction"] == "higher_is_better"
    plain = runner.invoke(app, ["metrics"]).stdout.splitlines()  # not a terminal: one line per metric
    assert "flag: 1 is bad" in next(line for line in plain if line.startswith("pii_leakage "))
    assert "lower is better" in next(line for line in plain if line.startswith("latency "))
    assert "higher is better" in next(line for line in plain if line.startswith("non_empty "))


def test_run_summary_and_results_file_show_the_direction(tmp_path: Path) -> None:
    traces = tmp_path / "traces.jsonl"
    write_traces(traces, 12, seed=3)
    config = write_config(tmp_path, traces)
    shown = runner.invoke(app, ["-q", "run", str(config)])
    assert shown.exit_code == 0, shown.stdout
    lines = shown.stdout.splitlines()
    assert any("pii_leakage" in line and "flag: 1 is bad" in line for line in lines), shown.stdout
    assert any("non_empty" in line and "higher is better" in line for line in lines), shown.stdout

    results_dir = Path(next(line for line in lines if line.startswith("results: ")).removeprefix("results: "))
    results = read_results(results_dir)
    directions = set(zip(results["metric_key"], results["direction"], strict=True))
    assert directions == {("pii_leakage", "lower_is_better"), ("non_empty", "higher_is_better")}
    summary = json.loads((results_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["metrics"]["pii_leakage"]["direction"] == "lower_is_better"
