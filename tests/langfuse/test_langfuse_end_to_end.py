"""`evalmon run CONFIG --json` on a langfuse config against the loopback fake (the real CLI, SDK and HTTP)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import WINDOW_SINCE, WINDOW_UNTIL
from fakes.langfuse_server import FakeLangfuse, generate_traces

from shared.langfuse.score_body import score_id
from shared.monitoring.window import iso

N_TRACES = 60
METRICS = ("non_empty", "latency")
EVALMON = [sys.executable, "-m", "shared.cli"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "monitoring_langfuse.yaml"
    body = {
        "monitor": "athena-langfuse-e2e",
        "source": {
            "type": "langfuse",
            "trace_name": "athena",
            "page_size": 25,
            "max_retries": 10,  # injected faults: keep the chance of 11 failures in a row negligible
            "retry_initial_s": 0.01,
            "retry_max_s": 0.05,
        },
        "window": {"since": iso(WINDOW_SINCE), "until": iso(WINDOW_UNTIL)},
        "metrics": [{"key": "non_empty"}, {"key": "latency"}],
        "dedup": {"store": "csv", "path": str(tmp_path / "scored_items.csv")},
        "publish": {
            "local": {"dir": str(tmp_path / "runs")},
            "langfuse": {"enabled": True, "environment": "production"},
        },
    }
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def evalmon_run(fake: FakeLangfuse, config: Path) -> tuple[int, dict[str, Any]]:
    env = {**os.environ, **fake.env(), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [*EVALMON, "run", str(config), "--json"],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.stdout.strip(), f"no JSON summary; stderr:\n{done.stderr[-3000:]}"
    return done.returncode, json.loads(done.stdout)


def expected_ids(fake: FakeLangfuse) -> set[str]:
    traces = {r["traceId"] for r in fake.state.observations if r.get("traceName") == "athena"}
    return {score_id("athena-langfuse-e2e", "langfuse", t, m) for t in traces for m in METRICS}


def test_run_publishes_one_score_per_pair_and_a_rerun_publishes_nothing(fake: FakeLangfuse, config: Path) -> None:
    fake.seed_observations(generate_traces(N_TRACES, since=WINDOW_SINCE, until=WINDOW_UNTIL))
    code, summary = evalmon_run(fake, config)
    assert code == 0, summary
    assert summary["status"] == "ok"
    assert summary["counts"]["fetched"] == N_TRACES
    assert summary["counts"]["published_langfuse"] == N_TRACES * len(METRICS)
    assert fake.score_ids() == expected_ids(fake)
    posts = fake.requests["POST /api/public/scores"]

    code, again = evalmon_run(fake, config)
    assert code == 0 and again["counts"]["published_langfuse"] == 0
    assert again["counts"]["duplicates"] == N_TRACES
    assert fake.requests["POST /api/public/scores"] == posts  # nothing sent at all
    assert fake.score_ids() == expected_ids(fake)  # no duplicate ids


def test_a_publish_failing_halfway_then_a_rerun_leaves_exactly_one_score_per_pair(
    fake: FakeLangfuse, config: Path
) -> None:
    fake.seed_observations(generate_traces(N_TRACES, since=WINDOW_SINCE, until=WINDOW_UNTIL))
    fake.set_faults(fail_writes_after=N_TRACES)  # half of the 120 scores, then every write fails
    code, summary = evalmon_run(fake, config)
    assert code == 1
    assert summary["status"] in ("partial", "failed")
    assert any("langfuse" in e for e in summary["errors"])
    assert 0 < len(fake.score_ids()) < N_TRACES * len(METRICS)
    assert summary["counts"]["recorded"] < N_TRACES * len(METRICS)

    fake.set_faults()
    code, rerun = evalmon_run(fake, config)
    assert code == 0, rerun
    assert fake.score_ids() == expected_ids(fake)
    assert len(fake.scores()) == N_TRACES * len(METRICS)


def test_injected_5xx_and_periodic_429_complete_with_nothing_lost(fake: FakeLangfuse, config: Path) -> None:
    fake.seed_observations(generate_traces(N_TRACES, since=WINDOW_SINCE, until=WINDOW_UNTIL))
    fake.set_faults(error_rate=0.2, rate_limit_every=5, retry_after="0")
    code, summary = evalmon_run(fake, config)
    assert code == 0, summary
    assert summary["counts"]["fetched"] == N_TRACES
    assert fake.score_ids() == expected_ids(fake)
    assert fake.statuses[503] > 0 and fake.statuses[429] > 0
