"""End to end: `evalmon run` with LLM-judge metrics against the fake OpenAI-compatible judge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from implementations.athena.generate_traces import write_traces
from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.sinks.local import read_results
from tests.fakes.openai_server import OpenAIServer
from tests.judge.helpers import judge_settings

REPO = Path(__file__).resolve().parents[2]


def athena_judge(body: dict[str, Any]) -> str:
    """Answers athena's three rubrics and the generic one, by what the prompt asks for."""
    text = "\n".join(m["content"] for m in body["messages"])
    if '{"claims"' in text:
        return json.dumps({"claims": ["The property is in the flood zone.", "The roof is 30 years old."]})
    if '"supported"' in text:
        return json.dumps({"supported": "roof" not in text.split("CLAIM:")[-1], "reasoning": "item [1]"})
    return json.dumps({"score": 5, "label": "consistent", "reasoning": "Follows the flags."})


@pytest.fixture
def fake() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        server.state.responder = athena_judge
        yield server


def write_config(tmp_path: Path, **evaluation: Any) -> Path:
    traces = tmp_path / "traces.jsonl"
    write_traces(traces, 12, seed=11)
    config = {
        "monitor": "judge_e2e",
        "plugins": ["implementations.athena.llm_metrics"],
        "source": {"type": "file", "path": str(traces)},
        "extractor": "implementations.athena.extractors:extract_recommendation",
        "window": {"lookback_minutes": 100000000},
        "metrics": [
            {"key": "llm_judge", "name": "answer_quality", "params": {"model": "gpt-4o-mini"}},
            {"key": "athena_underwriting_faithfulness", "params": {"model": "gpt-4o-mini"}},
            {"key": "athena_decision_quality"},
            {"key": "athena_refer_reason_quality"},
        ],
        "evaluation": {"concurrency": 8, "retries": 0, **evaluation},
        "dedup": {"path": str(tmp_path / "ledger.csv"), "lock_timeout_s": 30},
        "publish": {"local": {"dir": str(tmp_path / "runs")}},
    }
    path = tmp_path / "judge.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_monitor_publishes_judge_scores_with_provenance(fake: OpenAIServer, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    monitor = OnlineMonitor.from_yaml(config, settings=judge_settings(fake), base_dir=tmp_path)
    summary = monitor.run()
    assert summary.status == "ok", summary.errors
    assert fake.state.completions > 0
    assert summary.cost_usd > 0
    rows = read_results(str(summary.results_dir)).to_dict("records")
    scored = [r for r in rows if r["status"] == "ok"]
    assert {r["metric_name"] for r in scored} >= {
        "answer_quality",
        "athena_underwriting_faithfulness",
        "athena_decision_quality",
    }
    for row in scored:
        assert row["model"] == "gpt-4o-mini"
        assert row["prompt_name"] and row["prompt_version"].startswith("local-")
    faithfulness = [r for r in scored if r["metric_name"] == "athena_underwriting_faithfulness"]
    assert faithfulness and all(float(r["metric_score"]) == 0.5 for r in faithfulness)  # 1 of 2 claims
    assert summary.metrics["athena_decision_quality"].mean == 1.0

    fake.state.reset_counts()
    again = OnlineMonitor.from_yaml(config, settings=judge_settings(fake), base_dir=tmp_path).run()
    assert fake.state.attempts == 0  # everything was recorded: nothing to score, nothing to pay
    assert again.cost_usd == 0


def test_budget_leaves_items_for_the_next_run(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.usage = (2000, 100)  # $0.00036 a call with gpt-4o-mini prices
    config = write_config(tmp_path, max_cost_usd=0.003, concurrency=2)
    first = OnlineMonitor.from_yaml(config, settings=judge_settings(fake), base_dir=tmp_path).run()
    assert first.cost_usd <= 0.003
    calls = fake.state.completions
    assert calls > 0
    assert first.cost_usd >= 0.9 * 0.003  # the budget is spent before anything is deferred
    rows = read_results(str(first.results_dir)).to_dict("records")
    deferred_items = {r["id"] for r in rows if r["status"] == "deferred"}
    stop = [w for w in first.warnings if w.startswith("judge budget")]
    assert len(stop) == 1, first.warnings
    assert f"spent ${first.cost_usd:.4f}" in stop[0] and "left;" in stop[0]
    assert f"{len(deferred_items)} item(s) deferred to the next run" in stop[0]
    second = OnlineMonitor.from_yaml(
        config, settings=judge_settings(fake), base_dir=tmp_path, overrides=["evaluation.max_cost_usd=1.0"]
    ).run()
    assert fake.state.completions > calls  # the deferred items were picked up
    assert second.cost_usd > 0


def _cli(tmp_path: Path, fake: OpenAIServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "OPENAI_", "DATABASE_URL"))}
    env.update(
        OPENAI_API_KEY=fake.state.api_key,
        OPENAI_BASE_URL=fake.base_url,
        PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]),
    )
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", "run", str(write_config(tmp_path)), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_dry_run_shows_calls_and_cost_then_run_json_has_provenance(fake: OpenAIServer, tmp_path: Path) -> None:
    dry = _cli(tmp_path, fake, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert fake.state.attempts == 0
    assert "judge calls planned" in dry.stdout + dry.stderr and "estimated cost $" in dry.stdout + dry.stderr
    assert "  athena_decision_quality: " in dry.stdout and " calls, $" in dry.stdout  # and per metric

    real = _cli(tmp_path, fake, "--json")
    assert real.returncode == 0, real.stderr
    summary = json.loads(real.stdout)
    assert summary["status"] == "ok" and summary["cost_usd"] > 0
    rows = read_results(summary["results_dir"]).to_dict("records")
    judged = [r for r in rows if r["status"] == "ok" and r["metric_name"] == "answer_quality"]
    assert judged and all(r["model"] == "gpt-4o-mini" and r["prompt_version"] for r in judged)
