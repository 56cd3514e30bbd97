"""The Slack run report: one message with the counts and the metric table, the alerts in its thread,
and the chart uploaded there with slack_sdk's files_upload_v2, all against the Slack fake."""

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
from shared.monitoring import notify
from shared.reporting.run_report import BaselineFigure, MetricLine
from shared.reporting.slack_report import Link, LinkedItem, report_message
from shared.slack.service import SlackError

runner = CliRunner()
FIRING = {"metric": "non_empty", "op": "<=", "threshold": 1.0, "min_n": 1}  # non_empty scores at most 1


def monitor_config(tmp_path: Path, *, on: str = "always", rules: list[dict[str, Any]] | None = None) -> Path:
    traces = tmp_path / "traces.jsonl"
    if not traces.exists():
        write_traces(traces, 30, seed=5)
    config = {
        "monitor": "slack_report",
        "source": {"type": "file", "path": str(traces)},
        "metrics": [{"key": "non_empty"}, {"key": "pii_leakage"}],
        "alerts": {"rules": [FIRING] if rules is None else rules},
        "dedup": {"store": "none", "path": str(tmp_path / "ledger.csv")},
        "publish": {"local": {"dir": str(tmp_path / "runs")}, "slack": {"channel": "#evals", "on": on}},
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_json(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["run", str(config), "--json", *args])
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def slack_env(slack_server: SlackServer, monkeypatch: pytest.MonkeyPatch) -> SlackServer:
    monkeypatch.setenv("SLACK_API_URL", slack_server.url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack_server.state.token)
    monkeypatch.setenv("SLACK_ALERT_CHANNEL", "C-ALERTS")
    for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    return slack_server


def test_a_run_posts_its_report_with_the_alert_and_the_chart_in_the_thread(
    tmp_path: Path, slack_env: SlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALMON_REPORT_CHARTS", "1")  # the chart is part of what this test checks
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "team/evals")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    code, summary = run_json(monitor_config(tmp_path))
    assert code == 0 and summary["status"] == "ok" and summary["warnings"] == []
    state = slack_env.state
    report, alert = state.posted
    channel = state.channel_ids["evals"]
    assert report["channel"] == alert["channel"] == channel and "thread_ts" not in report
    assert alert["thread_ts"] == report["ts"] and "Opened" in str(alert["blocks"])
    header = report["blocks"][0]["text"]["text"]
    assert header == ":rotating_light: evalmon slack_report: ok, alerts 1 opened"
    body = json.dumps(report["blocks"])
    assert f"evaluated *{summary['counts']['evaluated']}*" in body
    assert "non_empty" in body and "pii_leakage" in body and "95% interval" in body
    assert "https://github.com/team/evals/actions/runs/42|workflow run" in body
    # the chart: files.getUploadURLExternal -> the bytes -> files.completeUploadExternal, in the thread
    assert [name for name, _ in state.calls if name.startswith("files.") or name == "upload"] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    [upload] = state.uploads.values()
    assert upload["completed"] and upload["channel"] == channel and upload["thread_ts"] == report["ts"]
    assert upload["data"].startswith(b"\x89PNG") and upload["length"] == len(upload["data"])
    replies = state.replies[(channel, report["ts"])]
    assert [bool(r.get("files")) for r in replies] == [False, True]  # the alert, then the chart


def test_on_alerts_posts_only_when_an_alert_opens_worsens_or_resolves(tmp_path: Path, slack_env: SlackServer) -> None:
    config = monitor_config(tmp_path, on="alerts")
    assert run_json(config)[0] == 0
    assert len(slack_env.state.posted) == 2  # opened: the report and its alert
    assert run_json(config)[1]["alerts"][0]["incident"] == "ongoing"
    assert len(slack_env.state.posted) == 2  # still firing at the same level: nothing
    quiet = monitor_config(tmp_path, on="alerts", rules=[{**FIRING, "op": ">", "threshold": 1.0}])
    code, summary = run_json(quiet)
    assert code == 0 and summary["alerts"] == []
    assert len(slack_env.state.posted) == 2  # a new rule, quiet; the old incident closed silently


def test_on_never_sends_the_alert_alone_and_a_dry_run_posts_nothing(tmp_path: Path, slack_env: SlackServer) -> None:
    config = monitor_config(tmp_path, on="never")
    code, summary = run_json(config, "--dry-run")
    assert code == 0 and summary["alerts"] and slack_env.state.calls == []
    assert run_json(config)[0] == 0
    [alert] = slack_env.state.posted
    assert alert["channel"] == "C-ALERTS" and "thread_ts" not in alert and slack_env.state.uploads == {}


def test_a_report_slack_refuses_is_a_warning_and_the_alert_still_goes_out(
    tmp_path: Path, slack_env: SlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise SlackError("chat.postMessage", "not_in_channel")

    monkeypatch.setattr(notify, "post_report", refuse)
    code, summary = run_json(monitor_config(tmp_path))
    assert code == 0 and summary["status"] == "ok"
    [warning] = summary["warnings"]
    assert "Slack run report not posted to #evals" in warning and "not_in_channel" in warning
    [alert] = slack_env.state.posted
    assert alert["channel"] == "C-ALERTS" and "Opened" in str(alert["blocks"])


def test_report_text_from_the_run_is_escaped() -> None:
    line = MetricLine(
        name="faithfulness",
        direction="higher_is_better",
        stat="pass rate",
        n=200,
        value=0.81,
        low=0.75,
        high=0.86,
        errors=2,
        skipped=0,
        baseline=BaselineFigure(runs=24, n=4800, value=0.83),
        worst=[],
    )
    summary = {
        "monitor": "athena",
        "status": "partial",
        "run_id": "20261122T200000Z-athena-ab`cd",
        "window": {"since": "2026-11-22T19:00:00Z", "until": "2026-11-22T20:00:00Z"},
        "counts": {"evaluated": 200, "fetched": 210},
        "warnings": ["answer <!channel> & <https://evil.example|click>"],
        "errors": [],
    }
    text, blocks = report_message(
        summary,
        [line],
        links=[Link("traces in Langfuse", "https://lf.example/project/p/traces")],
        items=[LinkedItem("faithfulness", "item<1>", "https://lf.example/trace/t1", 0.1)],
    )
    body = json.dumps(blocks, ensure_ascii=False)
    assert "<!channel>" not in body and "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in body
    assert "<https://lf.example/trace/t1|item&lt;1&gt;>" in body
    assert "pass 81.0%" in body and "75.0%-86.0%" in body and "-2.0 pts (worse) vs 83.0% over 24 runs" in body
    assert "`20261122T200000Z-athena-ab\u02cbcd`" in body
    assert blocks[0]["text"]["text"] == ":warning: evalmon athena: partial" and text.startswith("evalmon athena")
