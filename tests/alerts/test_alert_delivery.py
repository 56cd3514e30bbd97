"""An alert that fired and reached nobody fails the run: it is in the RunSummary's errors, exit 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.slack_server import SlackServer
from typer.testing import CliRunner

from implementations.athena.generate_traces import write_traces
from shared.cli import app

runner = CliRunner()


def monitor_config(tmp_path: Path, *, channel: str | None = "C-ALERTS") -> Path:
    traces = tmp_path / "traces.jsonl"
    write_traces(traces, 20, seed=5)
    config = {
        "monitor": "alert_delivery",
        "source": {"type": "file", "path": str(traces)},
        "metrics": [{"key": "non_empty"}],
        # non_empty scores at most 1, so "mean <= 1" fires on every run
        "alerts": {"channel": channel, "rules": [{"metric": "non_empty", "op": "<=", "threshold": 1.0, "min_n": 1}]},
        "dedup": {"path": str(tmp_path / "ledger.csv")},
        "publish": {"local": {"dir": str(tmp_path / "runs")}},
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_json(config: Path) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["run", str(config), "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def slack_env(slack_server: SlackServer, monkeypatch: pytest.MonkeyPatch) -> SlackServer:
    monkeypatch.setenv("SLACK_API_URL", slack_server.url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack_server.state.token)
    monkeypatch.delenv("SLACK_ALERT_CHANNEL", raising=False)
    return slack_server


def test_a_delivered_alert_leaves_the_run_ok(tmp_path: Path, slack_env: SlackServer) -> None:
    code, summary = run_json(monitor_config(tmp_path))
    assert code == 0 and summary["status"] == "ok" and summary["errors"] == []
    assert len(summary["alerts"]) == 1
    [message] = slack_env.state.posted
    assert message["channel"] == "C-ALERTS"


def test_an_alert_slack_refuses_fails_the_run_but_the_scores_stand(
    tmp_path: Path, slack_env: SlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-the-right-token")
    code, summary = run_json(monitor_config(tmp_path))
    assert code == 1 and summary["status"] == "failed"
    [error] = summary["errors"]
    assert "1 alert(s) fired but were not delivered to Slack" in error and "invalid_auth" in error
    assert "non_empty mean 1 <= 1 (n=" in error
    assert "xoxb-not-the-right-token" not in error
    counts = summary["counts"]
    assert counts["recorded"] == counts["evaluated"] > 0
    assert slack_env.state.posted == []


def test_an_alert_with_no_channel_to_go_to_fails_the_run(tmp_path: Path, slack_env: SlackServer) -> None:
    code, summary = run_json(monitor_config(tmp_path, channel=None))
    assert code == 1
    [error] = summary["errors"]
    assert "not delivered" in error and "alerts.channel" in error


def test_a_dry_run_sends_nothing_and_stays_ok(tmp_path: Path, slack_env: SlackServer) -> None:
    result = runner.invoke(app, ["run", str(monitor_config(tmp_path, channel=None)), "--json", "--dry-run"])
    summary = json.loads(result.stdout)
    assert result.exit_code == 0 and summary["errors"] == [] and len(summary["alerts"]) == 1
    assert slack_env.state.calls == []
