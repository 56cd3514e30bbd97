"""End to end: a monitor with `source.type: slack` against the fake Slack, and its alerts.

The monitor reads SLACK_BOT_TOKEN and SLACK_API_URL from the environment, as in production.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fakes.slack_server import SlackServer

from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.sinks.local import read_results

from .workspace import LABELS, seed, ts, window

ALERT_CHANNEL = "C-ALERTS"


def write_config(tmp_path: Path, *, unresolved_threshold: float, **extra: object) -> Path:
    win = window()
    config = {
        "monitor": "slack-assistant",
        "source": {"type": "slack", "channels": ["C1", "C2"], "max_concurrency": 2},
        "window": {"since": win.as_dict()["since"], "until": win.as_dict()["until"]},
        "metrics": [{"key": k} for k in ("response_latency", "negative_feedback", "unresolved", "escalation")],
        "dedup": {"store": "csv", "path": str(tmp_path / "scored_items.csv")},
        "publish": {"local": {"dir": str(tmp_path / "runs")}},
        "alerts": {
            "channel": ALERT_CHANNEL,
            "rules": [
                {"metric": "unresolved", "stat": "mean", "op": ">", "threshold": unresolved_threshold, "min_n": 3}
            ],
        },
        **extra,
    }
    path = tmp_path / "slack-monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def slack_env(slack_server: SlackServer, monkeypatch: pytest.MonkeyPatch) -> SlackServer:
    seed(slack_server.state)
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack_server.state.token)
    monkeypatch.setenv("SLACK_API_URL", slack_server.url)
    monkeypatch.delenv("SLACK_ALERT_CHANNEL", raising=False)
    return slack_server


def alert_posts(server: SlackServer) -> list[dict[str, object]]:
    return [m for m in server.state.posted if m["channel"] == ALERT_CHANNEL]


def test_evalmon_run_json_scores_slack_threads(slack_env: SlackServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, unresolved_threshold=0.9)
    env = {**os.environ, "SLACK_BOT_TOKEN": slack_env.state.token, "SLACK_API_URL": slack_env.url}
    proc = subprocess.run(
        [sys.executable, "-m", "shared.cli", "run", str(config), "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert slack_env.state.token not in proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "ok"
    assert summary["counts"]["fetched"] == len(LABELS)
    assert summary["counts"]["recorded"] == len(LABELS) * 4  # skipped pairs are recorded too
    metrics = summary["metrics"]
    assert metrics["unresolved"]["mean"] == pytest.approx(0.5)
    assert metrics["escalation"]["mean"] == pytest.approx(0.25)
    assert metrics["negative_feedback"]["mean"] == pytest.approx(1 / 3)
    assert metrics["response_latency"]["mean"] == pytest.approx((12 + 30 + 5) / 3)
    assert summary["alerts"] == []
    assert f"C1:{ts(100)}" in set(read_results(summary["results_dir"])["id"])


def test_an_alert_fires_exactly_once_for_a_breaching_run(slack_env: SlackServer, tmp_path: Path) -> None:
    monitor = OnlineMonitor.from_yaml(write_config(tmp_path, unresolved_threshold=0.4), base_dir=tmp_path)
    summary = monitor.run()
    assert summary.status == "ok"
    [alert] = summary.alerts
    assert alert["metric"] == "unresolved" and alert["value"] == pytest.approx(0.5) and alert["n"] == 4
    [post] = alert_posts(slack_env)
    assert "slack-assistant" in str(post["text"]) and "unresolved mean 0.5 > 0.4 (n=4)" in str(post["text"])
    # the worst items link to their Slack threads
    assert f"https://fake-team.slack.com/archives/C1/p{ts(100).replace('.', '')}" in json.dumps(post["blocks"])
    # a rerun over the same window has nothing new to score, so nothing new to alert about
    again = OnlineMonitor.from_yaml(write_config(tmp_path, unresolved_threshold=0.4), base_dir=tmp_path).run()
    assert again.counts.duplicates == len(LABELS) and again.alerts == []
    assert len(alert_posts(slack_env)) == 1


def test_a_healthy_run_posts_nothing(slack_env: SlackServer, tmp_path: Path) -> None:
    summary = OnlineMonitor.from_yaml(write_config(tmp_path, unresolved_threshold=0.6), base_dir=tmp_path).run()
    assert summary.status == "ok" and summary.counts.evaluated > 0
    assert summary.alerts == []
    assert alert_posts(slack_env) == []
    assert slack_env.state.call_count("chat.postMessage") == 0


def test_most_recent_sampling_takes_the_newest_threads(slack_env: SlackServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, unresolved_threshold=0.9, sampling={"strategy": "most_recent", "n": 2})
    summary = OnlineMonitor.from_yaml(config, base_dir=tmp_path).run(dry_run=True, keep_results=True)
    ids = set(read_results(str(summary.results_dir))["id"])
    assert {f"C2:{ts(300)}", f"C2:{ts(200)}"} <= ids
    assert f"C1:{ts(100)}" not in ids and f"C1:{ts(0)}" not in ids
    assert alert_posts(slack_env) == []
