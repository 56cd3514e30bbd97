"""Alert and Slack report configuration: clear errors for rules that mean nothing, YAML's `on:`."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.monitoring.loader import load_monitor_config

BASE = """
monitor: cfg
source: {type: file, path: x.jsonl}
metrics: [{key: non_empty, name: faithfulness}]
"""


def load(tmp_path: Path, extra: str) -> object:
    path = tmp_path / "monitor.yaml"
    path.write_text(BASE + extra, encoding="utf-8")
    return load_monitor_config(path, ()).config


def test_a_baseline_rule_and_a_threshold_rule(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
alerts:
  rules:
    - {metric: faithfulness, stat: pass_rate, compare: {runs: 24}, alpha: 0.01, min_n: 50}
    - {metric: faithfulness, threshold: 0.8}
""",
    )
    baseline, threshold = config.alerts.rules  # type: ignore[attr-defined]
    assert baseline.compare.runs == 24 and baseline.op is None and baseline.key == "faithfulness/pass_rate/baseline"
    assert threshold.op == "<" and threshold.key == "faithfulness/mean/<0.8"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{metric: faithfulness}", "needs 'threshold'"),
        ("{metric: faithfulness, compare: {runs: 24}, threshold: 0.8}", "drop 'threshold' and 'op'"),
        ("{metric: faithfulness, compare: {runs: 24, days: 7}}", "exactly one of 'runs'"),
        ("{metric: faithfulness, compare: {runs: 24}, alpha: 0.7}", "alpha"),
        ("{metric: nope, threshold: 0.8}", "valid: faithfulness"),
    ],
)
def test_rules_that_mean_nothing_are_config_errors(tmp_path: Path, rule: str, message: str) -> None:
    with pytest.raises(ConfigError, match="alert") as caught:
        load(tmp_path, f"alerts: {{rules: [{rule}]}}\n")
    assert message in str(caught.value)


def test_slack_report_on_is_read_although_yaml_calls_it_true(tmp_path: Path) -> None:
    config = load(tmp_path, "publish:\n  slack:\n    channel: '#evals'\n    on: always\n")
    assert config.publish.slack.on == "always"  # type: ignore[attr-defined]
    default = load(tmp_path, "publish: {slack: {channel: C0EVALS}}\n")
    assert default.publish.slack.on == "alerts"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"publish\.slack\.on") as caught:
        load(tmp_path, "publish: {slack: {channel: C0EVALS, on: sometimes}}\n")
    assert "always" in str(caught.value) and "never" in str(caught.value)
