"""Run reports: the numbers a reader sees (rates with intervals, direction, baseline change, worst items)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricResult
from shared.evaluation.results import ResultRow
from shared.reporting import ReportCollector, local_baseline, wilson_interval, write_run_report
from shared.reporting.stats import RunningMoments, mean_shift_p_value, two_proportion_p_value


def _row(item_id: str, metric: str, score: float | None, passed: bool | None, output: str = "an answer") -> ResultRow:
    item = DatasetItem(id=item_id, trace_id=f"trace-{item_id}", actual_output=output)
    result = MetricResult(score=score, passed=passed, explanation=f"why {item_id}")
    return ResultRow(item, metric, metric, "v1", "numeric", result)


def _summary(run_id: str, monitor: str = "m", **metrics: dict[str, float]) -> dict[str, object]:
    return {
        "run_id": run_id,
        "monitor": monitor,
        "status": "ok",
        "window": {"since": "2026-11-30T00:00:00+00:00", "until": "2026-11-30T01:00:00+00:00"},
        "counts": {"fetched": 40, "sampled": 40, "evaluated": 40},
        "metrics": metrics,
        "alerts": [{"message": "citation_validity pass_rate 0.75 < 0.9"}],
        "warnings": ["actual_output is empty on 30% of items"],
        "errors": [],
        "duration_s": 1.5,
        "cost_usd": 0.0,
    }


def test_wilson_interval_matches_the_textbook_values() -> None:
    low, high = wilson_interval(5, 10) or (0, 0)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson_interval(0, 10) or (0, 0)
    assert low == pytest.approx(0.0, abs=1e-12) and round(high, 4) == 0.2775
    assert wilson_interval(0, 0) is None


def test_moments_merge_like_one_pass() -> None:
    values = [0.1, 0.5, 0.9, 0.3, 0.7, 0.2]
    whole, left, right = RunningMoments(), RunningMoments(), RunningMoments()
    for v in values:
        whole.add(v)
    for v in values[:2]:
        left.add(v)
    for v in values[2:]:
        right.add(v)
    left.merge(right)
    assert left.n == whole.n and left.mean == pytest.approx(whole.mean) and left.m2 == pytest.approx(whole.m2)


def test_tests_fire_only_in_the_bad_direction() -> None:
    worse = two_proportion_p_value(30, 100, 10, 1000)  # 30% bad against 1% usual
    better = two_proportion_p_value(1, 100, 100, 1000)  # better than usual: no alarm
    assert worse is not None and worse < 0.001
    assert better is not None and better > 0.5
    base, now = RunningMoments(), RunningMoments()
    for v in [1.0, 1.2, 0.9, 1.1] * 25:
        base.add(v)
    for v in [2.0, 2.2, 1.9, 2.1] * 5:
        now.add(v)
    up_is_bad = mean_shift_p_value(now, base, higher_is_worse=True)
    down_is_bad = mean_shift_p_value(now, base, higher_is_worse=False)
    assert up_is_bad is not None and up_is_bad < 0.001
    assert down_is_bad is not None and down_is_bad > 0.99


def test_report_shows_rates_with_intervals_direction_and_worst_items(tmp_path: Path) -> None:
    collector = ReportCollector({"pii_leakage": "lower_is_better"})
    rows = [_row(f"i{i}", "citation_validity", 1.0 if i < 30 else 0.0, i < 30) for i in range(40)]
    rows += [_row(f"i{i}", "pii_leakage", 1.0 if i == 3 else 0.0, i != 3, "call 555-013-2456") for i in range(40)]
    rows += [_row(f"i{i}", "latency", float(i), None) for i in range(40)]
    collector.add(rows[:50])
    collector.add(rows[50:])  # chunks add up
    summary = _summary("20261130T010000Z-m-aaaa")
    md_path, html_path = write_run_report(tmp_path, summary, collector, langfuse_url="http://127.0.0.1:3000/")
    markdown = md_path.read_text()
    line = next(line for line in markdown.splitlines() if line.startswith("| citation_validity"))
    assert "pass rate 75.0%" in line and "higher is better" in line
    low, high = wilson_interval(30, 40) or (0, 0)
    assert f"{low:.1%} - {high:.1%}" in line
    assert "lower is better" in next(line for line in markdown.splitlines() if line.startswith("| pii_leakage"))
    assert "mean 19.5" in next(line for line in markdown.splitlines() if line.startswith("| latency"))
    assert "[i3](http://127.0.0.1:3000/trace/trace-i3)" in markdown  # the PII leak is a worst item
    assert "citation_validity pass_rate 0.75 < 0.9" in markdown and "empty on 30%" in markdown
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == 2
    assert not re.search(r"<(script|link)[^>]+(src|href)=['\"]?https?:", page)  # self-contained


def test_baseline_from_earlier_runs_gives_the_change(tmp_path: Path) -> None:
    for hour, rate in enumerate([0.9, 0.92, 0.88, 0.9, 0.9, 0.91]):
        run_id = f"20261130T0{hour}0000Z-m-{hour:04x}"
        (tmp_path / run_id).mkdir()
        summary = _summary(run_id, citation_validity={"n": 100, "pass_rate": rate})
        (tmp_path / run_id / "summary.json").write_text(json.dumps(summary))
    other = tmp_path / "20261130T010000Z-other-0000"
    other.mkdir()
    (other / "summary.json").write_text(
        json.dumps(_summary(other.name, "other", citation_validity={"n": 5, "pass_rate": 0.0}))
    )
    baseline = local_baseline(tmp_path, "m", before_run_id="20261130T090000Z-m-ffff")
    figure = baseline["citation_validity"]
    assert figure.runs == 6 and figure.n == 600 and figure.value == pytest.approx(0.901666, abs=1e-5)
    collector = ReportCollector()
    collector.add([_row(f"i{i}", "citation_validity", 1.0 if i < 30 else 0.0, i < 30) for i in range(40)])
    md_path, _ = write_run_report(tmp_path / "now", _summary("now"), collector, baseline=baseline)
    assert "-15.2 pts (worse) vs 90.2% over 6 runs" in md_path.read_text()


def test_a_run_with_nothing_scored_still_reports(tmp_path: Path) -> None:
    md_path, html_path = write_run_report(tmp_path, _summary("empty"), ReportCollector())
    assert "Nothing was scored" in md_path.read_text() and "Nothing was scored" in html_path.read_text()


def test_charts_draw_rates_of_zero_and_one(tmp_path: Path) -> None:
    """Wilson bounds at 0% and 100% carry float noise; the chart must still draw."""
    collector = ReportCollector()
    collector.add([_row(f"i{i}", "all_pass", 1.0, True) for i in range(13)])  # n where the bounds drift
    collector.add([_row(f"i{i}", "all_fail", 0.0, False) for i in range(10)])
    _, html_path = write_run_report(tmp_path, _summary("edges"), collector)
    assert html_path.read_text(encoding="utf-8").count("data:image/png;base64,") == 2
