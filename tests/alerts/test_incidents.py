"""Incidents: one message when a rule starts firing, none while it fires at the same level, one when
it worsens, one when it resolves; backfills and reruns never re-send. The same story with the state
file and with Postgres."""

from __future__ import annotations

import random
from pathlib import Path

import psycopg
from fakes.slack_server import SlackServer
from pydantic import SecretStr

from shared.monitoring.config import ALERT_STATE_FILE as STATE_FILE_NAME
from shared.settings import Settings

from .simulation import Simulation, mean_summary

RULE = {"metric": "faithfulness", "stat": "mean", "op": "<", "threshold": 0.8, "min_n": 20}


def story(sim: Simulation) -> list[str]:
    """Runs through every transition; returns the incident mark of each run's alert ('' = none)."""
    rng = random.Random(2)
    marks = []
    for mu in (0.9, 0.5, 0.5, 0.5, 0.2, 0.2, 0.9, 0.9):
        summary = sim.run({"faithfulness": mean_summary(rng, mu, 0.2, n=100)})
        marks.append(summary.alerts[0]["incident"] if summary.alerts else "")
    return marks


def check_story(sim: Simulation, slack_server: SlackServer) -> None:
    marks = story(sim)
    assert marks == ["", "opened", "ongoing", "ongoing", "worsened", "ongoing", "", ""]
    assert sim.messages() == [
        ":rotating_light: athena_hourly: alerts 1 opened",
        ":rotating_light: athena_hourly: alerts 1 worsened",
        ":white_check_mark: athena_hourly: alerts 1 resolved",
    ]
    worse, resolved = slack_server.state.posted[1], slack_server.state.posted[2]
    assert "was 0.5" in str(worse["blocks"]) and "open for 4 runs" in str(worse["blocks"])
    assert "is *0.9" in str(resolved["blocks"]) and "(5 runs)" in str(resolved["blocks"])

    # A rerun of the window that opened the incident, and a backfill of an older one: both fire, neither sends.
    rng = random.Random(3)
    rerun = sim.run({"faithfulness": mean_summary(rng, 0.4, 0.2, n=100)}, index=1)
    backfill = sim.run({"faithfulness": mean_summary(rng, 0.4, 0.2, n=100)}, index=-48)
    assert rerun.alerts[0]["incident"] == backfill.alerts[0]["incident"] == "backfill"
    assert len(slack_server.state.posted) == 3
    # and the live runs carry on from the state the backfill did not touch
    live = sim.run({"faithfulness": mean_summary(rng, 0.4, 0.2, n=100)})
    assert live.alerts[0]["incident"] == "opened" and len(slack_server.state.posted) == 4


def test_incident_story_with_the_state_file(tmp_path: Path, slack_server: SlackServer) -> None:
    sim = Simulation.start(tmp_path, slack_server, [RULE])
    check_story(sim, slack_server)
    assert (tmp_path / STATE_FILE_NAME).is_file()  # beside the ledger (dedup.path), git-ignored


def test_incident_story_with_postgres(tmp_path: Path, slack_server: SlackServer, migrated: Settings) -> None:
    settings = migrated.model_copy(
        update={"slack_bot_token": SecretStr(slack_server.state.token), "slack_api_url": slack_server.url}
    )
    sim = Simulation.start(tmp_path, slack_server, [RULE], settings=settings)
    check_story(sim, slack_server)
    assert not (tmp_path / STATE_FILE_NAME).exists()
    assert migrated.database_url is not None
    with psycopg.connect(migrated.database_url.get_secret_value()) as conn:
        conn.execute(f'SET search_path TO "{migrated.evalmon_db_schema}"')
        rows = conn.execute(
            "SELECT status, runs_open, value < 0.3, opened_run_id = notified_run_id FROM alert_incidents"
            " ORDER BY incident_id"
        ).fetchall()
        last = conn.execute("SELECT last_window_until FROM alert_monitors").fetchone()
    assert rows == [("resolved", 5, True, False), ("open", 1, False, True)]
    assert last is not None and last[0].isoformat().replace("+00:00", "Z") == sim.summaries[-1].window["until"]


def test_postgres_without_the_migration_fails_the_run_clearly(
    tmp_path: Path, slack_server: SlackServer, pg_settings: Settings
) -> None:
    settings = pg_settings.model_copy(
        update={"slack_bot_token": SecretStr(slack_server.state.token), "slack_api_url": slack_server.url}
    )
    sim = Simulation.start(tmp_path, slack_server, [RULE], settings=settings)
    summary = sim.run({"faithfulness": mean_summary(random.Random(1), 0.4, 0.2, n=100)})
    assert summary.status == "failed" and summary.alerts
    [error] = summary.errors
    assert "evalmon db migrate" in error and "nothing posted to Slack" in error


def test_a_message_slack_refuses_is_sent_again_by_the_next_run(tmp_path: Path, slack_server: SlackServer) -> None:
    sim = Simulation.start(tmp_path, slack_server, [RULE])
    rng = random.Random(4)
    good = sim.settings
    sim.settings = good.model_copy(update={"slack_bot_token": SecretStr("xoxb-revoked")})
    failed = sim.run({"faithfulness": mean_summary(rng, 0.4, 0.2, n=100)})
    assert failed.status == "failed" and "not delivered" in failed.errors[0] and "invalid_auth" in failed.errors[0]
    sim.settings = good
    again = sim.run({"faithfulness": mean_summary(rng, 0.4, 0.2, n=100)})
    assert again.status == "ok" and again.alerts[0]["incident"] == "opened"
    assert sim.messages() == [":rotating_light: athena_hourly: alerts 1 opened"]


def test_a_dry_run_evaluates_but_neither_sends_nor_remembers(tmp_path: Path, slack_server: SlackServer) -> None:
    sim = Simulation.start(tmp_path, slack_server, [RULE])
    rng = random.Random(5)
    dry = sim.run({"faithfulness": mean_summary(rng, 0.4, 0.2, n=100)}, dry_run=True)
    assert dry.alerts and dry.alerts[0]["incident"] is None and slack_server.state.calls == []
    live = sim.run({"faithfulness": mean_summary(rng, 0.4, 0.2, n=100)})
    assert live.alerts[0]["incident"] == "opened"


def test_a_damaged_state_file_is_kept_aside_and_the_run_goes_on(tmp_path: Path, slack_server: SlackServer) -> None:
    (tmp_path / STATE_FILE_NAME).write_text("{not json", encoding="utf-8")
    sim = Simulation.start(tmp_path, slack_server, [RULE])
    summary = sim.run({"faithfulness": mean_summary(random.Random(6), 0.4, 0.2, n=100)})
    assert summary.status == "ok" and summary.alerts[0]["incident"] == "opened"
    assert [p.name for p in tmp_path.glob(f"{STATE_FILE_NAME}.damaged-*")]


def test_an_incident_whose_rule_changed_closes_silently(tmp_path: Path, slack_server: SlackServer) -> None:
    sim = Simulation.start(tmp_path, slack_server, [RULE])
    rng = random.Random(7)
    sim.run({"faithfulness": mean_summary(rng, 0.4, 0.2, n=100)})
    sim.config = Simulation.start(tmp_path, slack_server, [{**RULE, "threshold": 0.3}]).config  # a new rule
    summary = sim.run({"faithfulness": mean_summary(rng, 0.4, 0.2, n=100)})
    assert summary.alerts == [] and sim.messages() == [":rotating_light: athena_hourly: alerts 1 opened"]
