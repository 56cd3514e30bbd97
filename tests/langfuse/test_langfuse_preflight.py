"""The Langfuse connection check goes through the retry policy: blips pass, outages fail in one line (exit 1),
rejected credentials fail at once (exit 2)."""

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import WINDOW_SINCE, WINDOW_UNTIL
from fakes.langfuse_server import FakeLangfuse, generate_traces
from test_langfuse_end_to_end import EVALMON, N_TRACES, evalmon_run, expected_ids

from shared.errors import ConfigError, SourceError
from shared.langfuse.client import check_connection, make_client
from shared.monitoring.window import iso
from shared.settings import Settings

CHECK = "GET /api/public/projects"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The end-to-end monitor (its name is what `expected_ids` expects), with quick retries."""
    path = tmp_path / "monitoring_langfuse.yaml"
    body = {
        "monitor": "athena-langfuse-e2e",
        "source": {
            "type": "langfuse",
            "trace_name": "athena",
            "max_retries": 10,
            "retry_initial_s": 0.01,
            "retry_max_s": 0.05,
        },
        "window": {"since": iso(WINDOW_SINCE), "until": iso(WINDOW_UNTIL)},
        "metrics": [{"key": "non_empty"}, {"key": "latency"}],
        "dedup": {"store": "csv", "path": str(tmp_path / "scored_items.csv")},
        "publish": {"local": {"dir": str(tmp_path / "runs")}, "langfuse": {"enabled": True}},
    }
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def test_429_and_5xx_at_the_connection_check_are_retried(fake: FakeLangfuse, lf_settings: Settings) -> None:
    fake.set_faults(error_rate=0.4, rate_limit_every=3, retry_after="0", connection_check=True)
    client = make_client(lf_settings)
    for _ in range(10):
        check_connection(client, attempts=12, initial_wait=0.01, max_wait=0.02)
    assert fake.statuses[429] > 0 and fake.statuses[503] > 0
    assert fake.requests[CHECK] == 10 + fake.statuses[429] + fake.statuses[503]


def test_the_connection_check_waits_what_retry_after_asks(fake: FakeLangfuse, lf_settings: Settings) -> None:
    fake.set_faults(rate_limit_every=2, retry_after="1", connection_check=True)
    client = make_client(lf_settings)
    check_connection(client)  # request 1 passes; request 2 will be the 429
    started = time.monotonic()
    check_connection(client, initial_wait=0.01)
    assert time.monotonic() - started >= 1.0
    assert fake.statuses[429] == 1 and fake.requests[CHECK] == 3


def test_an_outage_fails_after_bounded_retries_in_one_line(fake: FakeLangfuse, lf_settings: Settings) -> None:
    fake.set_faults(error_rate=1.0, connection_check=True)
    with pytest.raises(SourceError) as caught:
        check_connection(make_client(lf_settings), attempts=3, initial_wait=0.01, max_wait=0.02)
    message = str(caught.value)
    assert "unavailable after 3 attempt(s)" in message and "HTTP 503" in message
    assert "\n" not in message
    assert fake.requests[CHECK] == 3


def test_rejected_credentials_are_not_retried(fake: FakeLangfuse) -> None:
    fake.set_faults(error_rate=1.0, connection_check=True)
    wrong = Settings(langfuse_base_url=fake.url, langfuse_public_key=fake.public_key, langfuse_secret_key="nope")
    with pytest.raises(ConfigError, match="rejected the credentials"):
        check_connection(make_client(wrong), attempts=5, initial_wait=0.01)
    assert fake.requests[CHECK] == 1


def test_runs_through_faults_at_the_connection_check_all_succeed(fake: FakeLangfuse, config: Path) -> None:
    """The reported failure: 20% 5xx and a 429 every 7th request, connection check included."""
    fake.seed_observations(generate_traces(N_TRACES, since=WINDOW_SINCE, until=WINDOW_UNTIL))
    fake.set_faults(error_rate=0.2, rate_limit_every=7, retry_after="0", connection_check=True)
    for _ in range(4):
        code, summary = evalmon_run(fake, config)
        assert code == 0, summary
    assert fake.score_ids() == expected_ids(fake)
    assert fake.requests[CHECK] > 4  # at least one check was retried (a check per run and per sink)


def test_a_langfuse_outage_exits_1_and_bad_keys_exit_2(fake: FakeLangfuse, config: Path) -> None:
    fake.set_faults(error_rate=1.0, connection_check=True)
    code, summary = evalmon_run(fake, config)
    assert code == 1 and summary["status"] == "failed"
    assert len(summary["errors"]) == 1 and "unavailable after" in summary["errors"][0]

    code, stderr = evalmon_run_stderr(fake, config, secret="sk-lf-stale")
    assert code == 2
    assert "rejected the credentials" in stderr and "Traceback" not in stderr


def evalmon_run_stderr(fake: FakeLangfuse, config: Path, *, secret: str) -> tuple[int, str]:
    env = {**os.environ, **fake.env(), "LANGFUSE_SECRET_KEY": secret}
    done = subprocess.run(
        [*EVALMON, "run", str(config)],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stderr
