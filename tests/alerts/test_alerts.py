"""Alert rules over a run's results, and the one Slack message a breaching run posts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes.slack_server import SlackServer

from shared.errors import ConfigError
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricResult
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.monitoring.alerts import Alert, evaluate_alerts, send_alerts
from shared.monitoring.config import AlertsConfig, MonitorConfig
from shared.monitoring.run_context import RunContext
from shared.monitoring.window import Window
from shared.settings import Settings

TEMPLATE = "https://langfuse.example/project/p1/traces/{trace_id}"


def row(
    i: int, score: float | None, *, metric: str = "faithfulness", threshold: float = 0.7, error: str | None = None
) -> ResultRow:
    item = DatasetItem(id=f"item-{i}", trace_id=f"trace-{i}", query="q", actual_output="a")
    if error is not None:
        result = MetricResult.failure(error)
    else:
        assert score is not None
        result = MetricResult(score=score, threshold=threshold, passed=score >= threshold)
    return ResultRow(
        item=item, metric_name=metric, metric_key=metric, metric_version="v1", score_type="numeric", result=result
    )


def run_result(scores: list[float], errors: int = 0) -> EvaluationResult:
    rows = [row(i, s) for i, s in enumerate(scores)]
    rows += [row(100 + i, None, error="judge returned garbage") for i in range(errors)]
    return EvaluationResult(rows=rows)


def alerts_config(**rule: object) -> AlertsConfig:
    base: dict[str, object] = {"metric": "faithfulness", "stat": "mean", "op": "<", "threshold": 0.8, "min_n": 5}
    base.update(rule)
    return AlertsConfig.model_validate(
        {"channel": "C-ALERTS", "rules": [base], "worst_items": 3, "trace_url_template": TEMPLATE}
    )


def evaluate(config: AlertsConfig, result: EvaluationResult) -> list[Alert]:
    return evaluate_alerts(config, result.summary(), result)


def test_mean_below_threshold_fires_with_the_worst_items_linked() -> None:
    result = run_result([0.9, 0.2, 0.95, 0.4, 0.1, 0.85])
    [alert] = evaluate(alerts_config(), result)
    assert alert.metric == "faithfulness" and alert.stat == "mean"
    assert alert.value == pytest.approx(sum([0.9, 0.2, 0.95, 0.4, 0.1, 0.85]) / 6)
    assert alert.n == 6
    assert [i.id for i in alert.worst_items] == ["item-4", "item-1", "item-3"]
    assert alert.worst_items[0].url == "https://langfuse.example/project/p1/traces/trace-4"
    dumped = alert.model_dump()
    assert dumped["threshold"] == 0.8 and dumped["worst_items"][0]["score"] == 0.1


def test_healthy_run_and_small_samples_are_quiet() -> None:
    assert evaluate(alerts_config(), run_result([0.9, 0.95, 0.85, 0.99, 0.9])) == []
    assert evaluate(alerts_config(min_n=10), run_result([0.1] * 9)) == []
    assert evaluate(alerts_config(metric="not_in_this_run"), run_result([0.1] * 9)) == []


def test_pass_rate_and_error_rate_rules() -> None:
    result = run_result([0.9, 0.1, 0.2, 0.95, 0.3], errors=3)
    [low_pass] = evaluate(alerts_config(stat="pass_rate", threshold=0.5), result)
    assert low_pass.value == pytest.approx(2 / 5)
    assert [i.id for i in low_pass.worst_items] == ["item-1", "item-2", "item-4"]  # failed, furthest first
    [errors] = evaluate(alerts_config(stat="error_rate", op=">", threshold=0.2), result)
    assert errors.value == pytest.approx(3 / 8) and errors.n == 8
    assert all(i.error == "judge returned garbage" for i in errors.worst_items)
    assert evaluate(alerts_config(stat="error_rate", op=">", threshold=0.5), result) == []


def make_run(config: AlertsConfig, *, dry_run: bool = False) -> RunContext:
    monitor = MonitorConfig.model_validate(
        {
            "monitor": "athena-faithfulness",
            "source": {"type": "file", "path": "x.jsonl"},
            "metrics": [{"key": "non_empty", "name": "faithfulness"}],
            "alerts": config.model_dump(),
        }
    )
    until = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)
    return RunContext(
        run_id="20261122T200000Z-athena-faithfulness-abcd1234",
        monitor=monitor.monitor,
        config=monitor,
        config_hash=monitor.config_hash(),
        source_key="file",
        window=Window(since=until - timedelta(hours=1), until=until),
        settings=Settings(),
        base_dir=Path.cwd(),
        dry_run=dry_run,
    )


def test_a_breaching_run_posts_one_concise_message(slack_server: SlackServer) -> None:
    settings = Settings(slack_bot_token=slack_server.state.token, slack_api_url=slack_server.url)
    config = alerts_config()
    alerts = evaluate(config, run_result([0.1, 0.2, 0.3, 0.9, 0.2]))
    alerts += evaluate(alerts_config(stat="error_rate", op=">", threshold=0.1), run_result([0.9] * 5, errors=2))
    asyncio.run(send_alerts(alerts, make_run(config), settings))
    [message] = slack_server.state.posted
    assert message["channel"] == "C-ALERTS"
    assert "athena-faithfulness" in message["text"] and "mean 0.34 < 0.8 (n=5)" in message["text"]
    body = str(message["blocks"])
    assert "2026-11-22T19:00:00Z → 2026-11-22T20:00:00Z" in body
    assert "<https://langfuse.example/project/p1/traces/trace-0|item-0>" in body
    assert "error rate is *0.286*, rule `> 0.1` (n=7)" in body


def test_nothing_is_posted_for_a_healthy_run_or_a_dry_run(slack_server: SlackServer) -> None:
    settings = Settings(slack_bot_token=slack_server.state.token, slack_api_url=slack_server.url)
    config = alerts_config()
    asyncio.run(send_alerts([], make_run(config), settings))
    breaching = evaluate(config, run_result([0.1] * 5))
    asyncio.run(send_alerts(breaching, make_run(config, dry_run=True), settings))
    assert slack_server.state.posted == []
    assert slack_server.state.calls == []


def test_firing_without_a_channel_is_a_config_error() -> None:
    config = alerts_config().model_copy(update={"channel": None})
    breaching = evaluate(config, run_result([0.1] * 5))
    with pytest.raises(ConfigError, match=r"alerts\.channel"):
        asyncio.run(send_alerts(breaching, make_run(config), Settings(slack_bot_token="xoxb-x")))


def test_slack_permalink_is_the_link_when_there_is_no_trace() -> None:
    item = DatasetItem(id="C1:1.2", metadata={"permalink": "https://team.slack.com/archives/C1/p12"})
    rows = [
        ResultRow(
            item=item,
            metric_name="unresolved",
            metric_key="unresolved",
            metric_version="v",
            score_type="boolean",
            result=MetricResult(score=1.0, threshold=0.0, passed=False),
        )
    ]
    result = EvaluationResult(rows=rows)
    config = alerts_config(metric="unresolved", op=">", threshold=0.5, min_n=1)
    [alert] = evaluate(config, result)
    assert alert.worst_items[0].url == "https://team.slack.com/archives/C1/p12"
