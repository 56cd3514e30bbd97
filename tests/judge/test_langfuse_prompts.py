"""Judge rubrics managed in Langfuse (the fake prompt API, through the prompt manager and the SDK)."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from implementations.athena.generate_traces import write_traces
from shared.errors import ConfigError
from shared.evaluation import build_metric
from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.sinks.local import read_results
from shared.settings import Settings
from tests.fakes.langfuse_prompts import FakeLangfusePrompts
from tests.fakes.openai_server import OpenAIServer
from tests.judge.helpers import items, run

RUBRIC_V1 = 'Grade the answer 1-5 and reply in JSON {"score": n}.\nAnswer: {{output}}'
RUBRIC_V2 = 'Grade the answer strictly, 1-5, and reply in JSON {"score": n}.\nAnswer: {{output}}'


@pytest.fixture
def judge_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def langfuse() -> Iterator[FakeLangfusePrompts]:
    with FakeLangfusePrompts() as fake:
        yield fake


def settings_for(judge: OpenAIServer, langfuse: FakeLangfusePrompts | None) -> Settings:
    if langfuse is None:  # a closed port: Langfuse configured but unreachable
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base, public, secret = f"http://127.0.0.1:{s.getsockname()[1]}", f"pk-lf-{uuid.uuid4().hex[:8]}", "sk-x"
    else:
        base, public, secret = langfuse.url, langfuse.public_key, langfuse.secret_key
    return Settings(
        _env_file=None,
        openai_api_key=SecretStr(judge.state.api_key),
        openai_base_url=judge.base_url,
        langfuse_base_url=base,
        langfuse_public_key=public,
        langfuse_secret_key=SecretStr(secret),
        langfuse_timeout_s=2,
        database_url=None,
        prompt_cache_stamp=None,
    )


def run_with(settings: Settings, metric: Any, tmp_path: Path, n: int = 2) -> Any:
    """helpers.run with these settings (its judge_settings ignore Langfuse)."""
    import tests.judge.helpers as helpers

    original = helpers.judge_settings
    helpers.judge_settings = lambda server: settings  # type: ignore[assignment]
    try:
        return run([metric], items(n), server=None, base_dir=tmp_path)[0]
    finally:
        helpers.judge_settings = original


def test_rubric_comes_from_langfuse_with_its_version(
    judge_server: OpenAIServer, langfuse: FakeLangfusePrompts, tmp_path: Path
) -> None:
    langfuse.add("answer_quality", RUBRIC_V1, labels=["production"])
    settings = settings_for(judge_server, langfuse)
    first = build_metric("llm_judge", params={"prompt_name": "answer_quality", "cache_path": "c.sqlite"})
    result = run_with(settings, first, tmp_path)
    assert [(r.result.prompt_name, r.result.prompt_version) for r in result] == [("answer_quality", "1")] * 2
    assert judge_server.state.bodies[0]["messages"][0]["content"].startswith("Grade the answer 1-5")

    langfuse.add("answer_quality", RUBRIC_V2, labels=["production"])  # a new production version
    second = build_metric("llm_judge", params={"prompt_name": "answer_quality", "cache_path": "c.sqlite"})
    result = run_with(settings, second, tmp_path)
    assert {r.result.prompt_version for r in result} == {"2"}
    assert judge_server.state.completions == 4  # the new rubric is not answered from the cache
    assert first.version != second.version


def test_unreachable_langfuse_falls_back_to_the_local_file(judge_server: OpenAIServer, tmp_path: Path) -> None:
    fallback = tmp_path / "rubric.txt"
    fallback.write_text(RUBRIC_V1)
    metric = build_metric("llm_judge", params={"prompt_name": "answer_quality", "fallback_file": str(fallback)})
    result = run_with(settings_for(judge_server, None), metric, tmp_path)
    assert all(r.status.value == "ok" for r in result)
    assert {r.result.prompt_version for r in result} == {metric.provenance()["prompts"]["rubric"][1]}
    assert next(iter(result)).result.prompt_version.startswith("local-")


def test_monitor_with_a_langfuse_rubric_does_not_rescore_recorded_items(
    judge_server: OpenAIServer, langfuse: FakeLangfusePrompts, tmp_path: Path
) -> None:
    langfuse.add("answer_quality", RUBRIC_V1, labels=["production"])
    traces = tmp_path / "traces.jsonl"
    write_traces(traces, 8, seed=5)
    config = tmp_path / "m.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "monitor": "lf_judge",
                "source": {"type": "file", "path": str(traces)},
                "extractor": "implementations.athena.extractors:extract_recommendation",
                "window": {"lookback_minutes": 100000000},
                "metrics": [{"key": "llm_judge", "params": {"prompt_name": "answer_quality"}}],
                "dedup": {"path": str(tmp_path / "ledger.csv")},
                "publish": {"local": {"dir": str(tmp_path / "runs")}},
            }
        )
    )
    settings = settings_for(judge_server, langfuse)
    first = OnlineMonitor.from_yaml(config, settings=settings, base_dir=tmp_path).run()
    assert first.status == "ok" and judge_server.state.completions > 0
    rows = read_results(str(first.results_dir)).to_dict("records")
    assert {(r["prompt_name"], r["prompt_version"]) for r in rows if r["status"] == "ok"} == {("answer_quality", "1")}

    judge_server.state.reset_counts()
    second = OnlineMonitor.from_yaml(config, settings=settings, base_dir=tmp_path).run()
    assert second.counts.duplicates == first.counts.recorded  # same prompt version: nothing to redo
    assert judge_server.state.attempts == 0

    langfuse.add("answer_quality", RUBRIC_V2, labels=["production"])
    third = OnlineMonitor.from_yaml(config, settings=settings, base_dir=tmp_path).run()
    assert third.counts.evaluated == first.counts.evaluated  # a new rubric version re-scores
    assert judge_server.state.completions > 0
    assert json.loads((Path(third.results_dir) / "summary.json").read_text())["cost_usd"] > 0


def test_a_langfuse_rubric_declares_its_scale_in_its_config(
    judge_server: OpenAIServer, langfuse: FakeLangfusePrompts, tmp_path: Path
) -> None:
    rubric = 'Grade the answer from 0 to 10 and reply in JSON {"score": n}.\nAnswer: {{output}}'
    langfuse.add("answer_quality", rubric, labels=["production"], config={"score_scale": [0, 10]})
    judge_server.state.responder = lambda body: json.dumps({"score": 7})
    settings = settings_for(judge_server, langfuse)
    adopted = build_metric("llm_judge", params={"prompt_name": "answer_quality", "cache": False})
    assert {r.result.score for r in run_with(settings, adopted, tmp_path)} == {0.7}  # read on the declared 0..10

    clashing = build_metric(
        "llm_judge", params={"prompt_name": "answer_quality", "cache": False, "score_scale": [1, 5]}
    )
    with pytest.raises(ConfigError, match=r"disagrees with prompt 'answer_quality' \(version 1\)"):
        run_with(settings, clashing, tmp_path)
