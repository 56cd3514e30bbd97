"""Baseline alerts on synthetic hourly histories: they fire on real shifts and stay quiet on noise.

Each run's figures are drawn from a known truth (n = 200 items per run), its alerts go through the
monitor's path (baseline from the runs folder, incidents in the state file, Slack fake), and its
summary.json is left for the next run's baseline.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from fakes.slack_server import SlackServer

from shared.evaluation.results import MetricSummary
from shared.monitoring.alerts import Baseline, BaselineRequest, evaluate_rules
from shared.monitoring.config import AlertsConfig
from shared.reporting.history import MetricFigures, RunFigures

from .simulation import Simulation, flag_summary, mean_summary, pass_rate_summary

_T = datetime(2026, 11, 1, tzinfo=UTC)
PASS_RULE = {"metric": "faithfulness", "stat": "pass_rate", "compare": {"runs": 24}, "alpha": 0.01, "min_n": 50}


def test_a_defect_surge_fires_at_the_first_run_after_it(tmp_path: Path, slack_server: SlackServer) -> None:
    rng = random.Random(11)
    sim = Simulation.start(tmp_path, slack_server, [PASS_RULE])
    stable = [sim.run({"faithfulness": pass_rate_summary(rng, 0.90)}) for _ in range(30)]
    assert sum(sim.opened(s) for s in stable) <= 1
    surge = sim.run({"faithfulness": pass_rate_summary(rng, 0.60)})  # 10% -> 40% defects
    [alert] = surge.alerts
    assert alert["incident"] == "opened" and alert["kind"] == "baseline"
    assert alert["baseline"]["source"] == "runs folder" and alert["baseline"]["runs"] == 24
    assert alert["value"] < 0.7 and alert["baseline"]["value"] > 0.85 and alert["p_value"] < 1e-6
    assert "Opened" in str(slack_server.state.posted[-1]["blocks"])


def test_a_shift_from_10_to_20_percent_defects_fires_within_three_runs(
    tmp_path: Path, slack_server: SlackServer
) -> None:
    for seed in range(5):
        rng = random.Random(100 + seed)
        sim = Simulation.start(tmp_path / str(seed), slack_server, [PASS_RULE])
        for _ in range(30):
            sim.run({"faithfulness": pass_rate_summary(rng, 0.90)})
        after = [sim.run({"faithfulness": pass_rate_summary(rng, 0.80)}) for _ in range(3)]
        assert any(sim.opened(s) for s in after), f"seed {seed}: no alert within three runs of the shift"


def test_100_stable_runs_fire_at_most_once(tmp_path: Path, slack_server: SlackServer) -> None:
    rng = random.Random(7)
    sim = Simulation.start(tmp_path, slack_server, [PASS_RULE])
    summaries = [sim.run({"faithfulness": pass_rate_summary(rng, 0.90)}) for _ in range(100)]
    assert sum(sim.opened(s) for s in summaries) <= 1


def test_stable_at_82_percent_for_50_windows_is_quiet_and_a_drop_to_60_fires(
    tmp_path: Path, slack_server: SlackServer
) -> None:
    rng = random.Random(3)
    sim = Simulation.start(tmp_path, slack_server, [PASS_RULE])
    for _ in range(50):
        sim.run({"faithfulness": pass_rate_summary(rng, 0.82)})
    assert slack_server.state.posted == []
    drop = sim.run({"faithfulness": pass_rate_summary(rng, 0.60)})
    assert sim.opened(drop)
    assert len(slack_server.state.posted) == 1


def test_the_false_alarm_rate_stays_below_alpha_over_many_histories() -> None:
    """3,000 stable runs (30 histories of 100): at alpha 0.01 at most ~1% fire (measured: 0.6%)."""
    config = AlertsConfig.model_validate({"rules": [PASS_RULE]})
    rule = config.rules[0]
    fired = decisions = 0
    for seed in range(30):
        rng = random.Random(seed)
        history: list[RunFigures] = []
        for index in range(124):
            summary = pass_rate_summary(rng, 0.82)
            if index >= 24:
                baseline = Baseline("memory", history[-24:][::-1], BaselineRequest(rule, _T, _T))
                [outcome] = evaluate_rules(config, {"faithfulness": summary}, baselines={rule.key: baseline})
                fired += outcome.state == "firing"
                decisions += 1
            figures = MetricFigures.from_summary(summary.model_dump())
            assert figures is not None
            history.append(RunFigures(f"r{index}", _T, {"faithfulness": figures}))
    assert fired / decisions <= 0.012, f"{fired} false alarms in {decisions} stable runs"


def test_a_lasting_drop_is_one_incident_until_it_recovers(tmp_path: Path, slack_server: SlackServer) -> None:
    """While an incident is open, the baseline stays the runs before it: the drop cannot become the
    usual level and quietly 'resolve' while the metric is still down."""
    rng = random.Random(5)
    sim = Simulation.start(tmp_path, slack_server, [PASS_RULE])
    for _ in range(30):
        sim.run({"faithfulness": pass_rate_summary(rng, 0.90)})
    posted_before = len(slack_server.state.posted)
    for _ in range(20):  # 20 runs at 20% defects: more than the 24-run baseline could absorb unfrozen
        sim.run({"faithfulness": pass_rate_summary(rng, 0.80)})
    during = sim.messages()[posted_before:]
    assert len(during) == 1 and "opened" in during[0]
    firing = [s for s in sim.summaries[30:] if s.alerts]
    opening = next(s for s in firing if sim.opened(s))
    assert len(firing) >= 15  # still firing long after 24 runs would have absorbed a drifting baseline
    assert {s.alerts[0]["baseline"]["before"] for s in firing} == {opening.window["until"]}
    back = [sim.run({"faithfulness": pass_rate_summary(rng, 0.90)}) for _ in range(2)]
    assert not back[0].alerts and "resolved" in sim.messages()[-1]
    assert len(sim.messages()) == posted_before + 2


def test_means_fire_only_in_the_metrics_bad_direction(tmp_path: Path, slack_server: SlackServer) -> None:
    rule = {"metric": "latency", "stat": "mean", "compare": {"runs": 12}, "min_n": 30}
    rng = random.Random(9)
    sim = Simulation.start(tmp_path, slack_server, [rule])
    slow_is_bad = {"direction": "lower_is_better"}
    for _ in range(15):
        sim.run({"latency": mean_summary(rng, 2.0, 0.5, **slow_is_bad)})
    faster = sim.run({"latency": mean_summary(rng, 1.5, 0.5, **slow_is_bad)})
    assert faster.alerts == []
    slower = sim.run({"latency": mean_summary(rng, 2.4, 0.5, **slow_is_bad)})
    [alert] = slower.alerts
    assert alert["stat"] == "mean" and alert["direction"] == "lower_is_better" and alert["value"] > 2.2


def test_rare_flags_are_tested_exactly(tmp_path: Path, slack_server: SlackServer) -> None:
    """A PII flag raised on 1 item in 200 as a rule: 4 in one run is within chance (exact p ~ 0.02,
    where the normal approximation would say 0.002 and fire); 10 is not."""
    rule = {"metric": "pii_leakage", "stat": "mean", "compare": {"runs": 24}, "min_n": 50}
    sim = Simulation.start(tmp_path, slack_server, [rule])
    for index in range(24):
        sim.run({"pii_leakage": flag_summary(index % 3)})  # 0, 1, 2, ...: 24 flags in 4,800 items
    assert sim.run({"pii_leakage": flag_summary(4)}).alerts == []
    [alert] = sim.run({"pii_leakage": flag_summary(10)}).alerts
    assert alert["value"] == 0.05 and alert["p_value"] < 0.001


def test_without_history_or_with_too_few_items_a_rule_says_nothing(tmp_path: Path, slack_server: SlackServer) -> None:
    rng = random.Random(1)
    sim = Simulation.start(tmp_path, slack_server, [PASS_RULE])
    assert sim.run({"faithfulness": pass_rate_summary(rng, 0.10)}).alerts == []  # no baseline yet
    for _ in range(5):
        sim.run({"faithfulness": pass_rate_summary(rng, 0.90)})
    small = MetricSummary(n=20, judged=20, pass_rate=0.1, mean=0.1, std=0.3)
    assert sim.run({"faithfulness": small}).alerts == []  # 20 < min_n
    assert slack_server.state.posted == []
