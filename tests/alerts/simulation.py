"""Hourly runs of one monitor, simulated: each run's metric summary drawn from a known truth.

A `Simulation` goes through what the monitor does after scoring (shared.monitoring.notify: the
baseline from earlier runs, incidents, Slack) and then leaves the run's summary.json in the runs
folder, as the monitor does, so the next run's baseline reads it.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fakes.slack_server import SlackServer

from shared.evaluation.results import MetricSummary
from shared.monitoring.config import MonitorConfig
from shared.monitoring.notify import alert_and_report
from shared.monitoring.run_context import RunContext, new_run_id
from shared.monitoring.summary import RunSummary
from shared.monitoring.window import Window
from shared.settings import Settings

T0 = datetime(2026, 11, 1, tzinfo=UTC)
MONITOR = "athena_hourly"


def monitor_config(tmp_path: Path, rules: list[dict[str, Any]], **extra: Any) -> MonitorConfig:
    data: dict[str, Any] = {
        "monitor": MONITOR,
        "source": {"type": "file", "path": "traces.jsonl"},
        "metrics": [
            {"key": "non_empty", "name": "faithfulness"},
            {"key": "non_empty", "name": "latency"},
            {"key": "non_empty", "name": "pii_leakage"},
        ],
        "alerts": {"channel": "C-ALERTS", "rules": rules},
        "dedup": {"path": str(tmp_path / "ledger.csv")},
        "publish": {"local": {"dir": str(tmp_path / "runs")}},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return MonitorConfig.model_validate(data)


def pass_rate_summary(rng: random.Random, p_pass: float, n: int = 200) -> MetricSummary:
    """A judged metric: each of n items passes with probability p_pass (score 1 or 0)."""
    passed = sum(rng.random() < p_pass for _ in range(n))
    mean = passed / n
    std = (mean * (1 - mean) * n / (n - 1)) ** 0.5
    return MetricSummary(n=n, judged=n, pass_rate=passed / n, mean=mean, std=std)


def mean_summary(rng: random.Random, mu: float, sigma: float, n: int = 200, **kw: Any) -> MetricSummary:
    """A numeric metric without verdicts (e.g. latency seconds), normal scores."""
    values = [rng.gauss(mu, sigma) for _ in range(n)]
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    return MetricSummary(n=n, mean=mean, std=std, **kw)


def flag_summary(flags: int, n: int = 200) -> MetricSummary:
    """A lower-is-better boolean (a PII flag): `flags` of n items raise it."""
    mean = flags / n
    std = (mean * (1 - mean) * n / (n - 1)) ** 0.5
    return MetricSummary(direction="lower_is_better", score_type="boolean", n=n, mean=mean, std=std)


@dataclass
class Simulation:
    tmp_path: Path
    config: MonitorConfig
    settings: Settings
    slack: SlackServer
    index: int = 0
    summaries: list[RunSummary] = field(default_factory=list)

    @classmethod
    def start(cls, tmp_path: Path, slack: SlackServer, rules: list[dict[str, Any]], **extra: Any) -> Simulation:
        settings = extra.pop("settings", None) or Settings(slack_bot_token=slack.state.token, slack_api_url=slack.url)
        return cls(tmp_path, monitor_config(tmp_path, rules, **extra), settings, slack)

    def context(self, index: int, *, dry_run: bool = False) -> RunContext:
        since = T0 + timedelta(hours=index)
        until = since + timedelta(hours=1)
        return RunContext(
            run_id=new_run_id(MONITOR, now=until + timedelta(minutes=10 + len(self.summaries) % 50)),
            monitor=MONITOR,
            config=self.config,
            config_hash=self.config.config_hash(),
            source_key="file",
            window=Window(since=since, until=until),
            settings=self.settings,
            base_dir=self.tmp_path,
            dry_run=dry_run,
        )

    def run(self, metrics: Mapping[str, MetricSummary], *, index: int | None = None, **kw: Any) -> RunSummary:
        """One run (the next hour unless `index` names an earlier one); returns its summary."""
        if index is None:
            index = self.index
            self.index += 1
        run = self.context(index, **kw)
        summary = RunSummary(
            run_id=run.run_id,
            monitor=MONITOR,
            status="dry_run" if run.dry_run else "ok",
            window={**run.window.as_dict(), "applied": True},
            metrics=dict(metrics),
        )
        asyncio.run(alert_and_report(run, summary, rows=[], versions={"faithfulness": "v1"}, settings=self.settings))
        if not run.dry_run:
            run.results_dir.mkdir(parents=True, exist_ok=True)
            (run.results_dir / "summary.json").write_text(json.dumps(summary.model_dump(mode="json")))
        self.summaries.append(summary)
        return summary

    def opened(self, summary: RunSummary) -> bool:
        return any(alert.get("incident") == "opened" for alert in summary.alerts)

    def messages(self) -> list[str]:
        """The header of every alert message posted so far."""
        return [str(m["blocks"][0]["text"]["text"]) for m in self.slack.state.posted]
