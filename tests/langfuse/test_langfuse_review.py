"""The review loop of the Langfuse sink: flagged items reach an annotation queue and failing items a
dataset exactly once, whatever the reruns, lost answers and kills (real SDK against the fake)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from conftest import WINDOW_SINCE, WINDOW_UNTIL
from fakes.langfuse_server import FakeLangfuse, generate_traces
from starlette.requests import Request
from starlette.responses import Response
from test_langfuse_sink import run_context

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricResult
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.langfuse.experiment import dataset_item_id
from shared.langfuse.sink import LangfuseSink
from shared.monitoring.config import LangfusePublishConfig
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import SinkReport
from shared.monitoring.window import iso
from shared.settings import Settings

QUEUE = "athena-review"
DATASET = "athena-regressions"
MONITOR = "athena-quality"  # run_context's monitor


def scored(n: int, *, observation_level: bool = False) -> EvaluationResult:
    """Item i scores i/n on `quality` (threshold 0.5: the first half fails); every 5th item errs on `judge`."""
    rows: list[ResultRow] = []
    for i in range(n):
        trace_id = f"{i:032x}"
        item = DatasetItem(
            id=f"obs-{i}" if observation_level else trace_id,
            trace_id=trace_id,
            observation_id=f"obs-{i}" if observation_level else None,
            query=f"question {i}",
            actual_output=f"answer {i}",
            expected_output="the right answer" if i == 0 else None,
            source_timestamp=WINDOW_SINCE + timedelta(seconds=i),
        )
        score = i / n
        quality = MetricResult(score=score, passed=score >= 0.5, threshold=0.5, explanation=f"why {i}")
        rows.append(ResultRow(item, "quality", "quality", "v1", "numeric", quality))
        judge = MetricResult.failure("judge timed out") if i % 5 == 0 else MetricResult(score=1.0, passed=True)
        rows.append(ResultRow(item, "judge", "judge", "v1", "numeric", judge))
    return EvaluationResult(rows)


def sink_for(settings: Settings, **config: Any) -> LangfuseSink:
    return LangfuseSink(
        settings,
        LangfusePublishConfig(enabled=True, **config),
        retry_initial_s=0.01,
        retry_max_s=0.05,
        max_retries=3,
    )


def publish(settings: Settings, results: EvaluationResult, run: RunContext | None = None, **config: Any) -> SinkReport:
    return asyncio.run(sink_for(settings, **config).publish(run or run_context(settings), results))


def queued(fake: FakeLangfuse) -> Counter[str]:
    return Counter(i["objectId"] for i in fake.queue_items_of(QUEUE))


def failing_traces(n: int) -> set[str]:
    return {f"{i:032x}" for i in range(n) if i / n < 0.5}


REVIEW = {"queue": QUEUE, "when": "failed"}


def test_failed_items_are_queued_and_kept_as_regression_cases_once_whatever_the_reruns(
    fake: FakeLangfuse, lf_settings: Settings
) -> None:
    results = scored(10)
    report = publish(lf_settings, results, review=REVIEW, regression_dataset=DATASET)
    assert report.ok, report.error
    assert report.details["review"] == {"queued": 5, "already_queued": 0, "over_cap": 0, "dataset_items": 5}
    assert queued(fake) == Counter(failing_traces(10))
    [queue] = fake.state.queues.values()
    [config] = fake.state.score_configs.values()
    assert queue["scoreConfigIds"] == [config["id"]] and (config["name"], config["dataType"]) == (
        "human_review",
        "BOOLEAN",
    )
    assert {i["objectType"] for i in fake.queue_items_of(QUEUE)} == {"TRACE"}

    items = {i["id"]: i for i in fake.state.dataset_items.values()}
    expected = {dataset_item_id(DATASET, MONITOR, "langfuse", t): t for t in failing_traces(10)}
    assert set(items) == set(expected)
    first = items[dataset_item_id(DATASET, MONITOR, "langfuse", f"{0:032x}")]
    assert first["input"] == "question 0" and first["expectedOutput"] == "the right answer"
    assert first["sourceTraceId"] == f"{0:032x}" and first["datasetName"] == DATASET
    assert first["metadata"]["actual_output"] == "answer 0"
    assert first["metadata"]["failed_metrics"]["quality"] == {
        "score": 0.0,
        "threshold": 0.5,
        "metric_version": "v1",
        "explanation": "why 0",
    }

    for run_id in ("run-2", "run-3"):  # reruns (new metric versions, a ledger lost...): nothing twice
        again = publish(
            lf_settings, results, run_context(lf_settings, run_id=run_id), review=REVIEW, regression_dataset=DATASET
        )
        assert again.ok, again.error
        assert again.details["review"]["queued"] == 0 and again.details["review"]["already_queued"] == 5
    assert queued(fake) == Counter(failing_traces(10))
    assert len(fake.state.queues) == 1 and len(fake.state.score_configs) == 1
    assert len(fake.state.dataset_items) == 5 and len(fake.state.datasets) == 1


def test_conditions_metrics_and_the_per_run_cap(fake: FakeLangfuse, lf_settings: Settings) -> None:
    low = publish(lf_settings, scored(10), review={"queue": QUEUE, "when": "score < 0.3", "metrics": ["quality"]})
    assert low.ok, low.error
    assert set(queued(fake)) == {f"{i:032x}" for i in range(3)}  # 0.0, 0.1, 0.2

    errors = publish(lf_settings, scored(10), review={"queue": QUEUE, "when": "errors"})
    assert errors.ok, errors.error
    assert set(queued(fake)) == {f"{i:032x}" for i in (0, 1, 2, 5)}  # 0 and 5 erred (0 was queued already)
    assert max(queued(fake).values()) == 1

    # One run, two chunks: the cap counts the whole run.
    fake.state.queue_items.clear()
    sink = sink_for(lf_settings, review={**REVIEW, "max_per_run": 3})
    run = run_context(lf_settings, run_id="run-capped")
    chunks = scored(10).rows
    first = asyncio.run(sink.publish(run, EvaluationResult(chunks[:6])))  # items 0-2: three failures
    second = asyncio.run(sink.publish(run, EvaluationResult(chunks[6:])))  # items 3-4 fail too
    assert (first.details["review"]["queued"], second.details["review"]["queued"]) == (3, 0)
    assert second.details["review"]["over_cap"] == 2 and len(queued(fake)) == 3
    assert first.ok and second.ok  # items over the cap are recorded: they are not queued later
    assert {("quality", f"{i:032x}") for i in range(5)} <= {(m, i) for i, m in first.stored | second.stored}


def test_an_existing_queue_is_used_the_oldest_of_its_name(fake: FakeLangfuse, lf_settings: Settings) -> None:
    client = sink_for(lf_settings).client
    config = client.api.score_configs.create(name="quality_ok", data_type="BOOLEAN")
    older = client.api.annotation_queues.create_queue(name=QUEUE, score_config_ids=[config.id])
    time.sleep(0.01)
    client.api.annotation_queues.create_queue(name=QUEUE, score_config_ids=[config.id])
    assert publish(lf_settings, scored(4), review=REVIEW).ok
    assert {i["queueId"] for i in fake.queue_items_of(QUEUE)} == {older.id}
    assert len(fake.state.score_configs) == 1  # the team's queue keeps its own score config


class LosesFirstAnswers(FakeLangfuse):
    """Stores each queue item, but the first answers get lost (a 503 after the write)."""

    lost = 2

    async def _queue_items(self, request: Request) -> Response:
        response = await super()._queue_items(request)
        if request.method == "POST" and self.lost > 0:
            self.lost -= 1
            return self._bad("upstream timed out", 503)
        return response


def test_a_lost_answer_is_looked_up_not_posted_again() -> None:
    with LosesFirstAnswers() as fake:
        settings = Settings(
            langfuse_base_url=fake.url, langfuse_public_key=fake.public_key, langfuse_secret_key=fake.secret_key
        )
        report = publish(settings, scored(6), review=REVIEW)
        assert report.ok, report.error
        assert queued(fake) == Counter(failing_traces(6))


class RefusesQueueItems(FakeLangfuse):
    async def _queue_items(self, request: Request) -> Response:
        if request.method == "POST":
            return self._guard(request, "/api/public/annotation-queues/{queueId}/items") or self._bad("forbidden", 403)
        return await super()._queue_items(request)


def test_items_that_were_not_queued_are_not_recorded() -> None:
    with RefusesQueueItems() as fake:
        settings = Settings(
            langfuse_base_url=fake.url, langfuse_public_key=fake.public_key, langfuse_secret_key=fake.secret_key
        )
        report = publish(settings, scored(6), review=REVIEW)
    assert report.error and report.error.startswith("review: queue item trace") and "HTTP 403" in report.error
    assert "3 scored pair(s) held back for the next run" in report.error
    held = {(f"{i:032x}", "quality") for i in range(3)}
    assert not held & report.stored  # the next run redoes them (and finds them in the queue if they arrived)
    assert (f"{4:032x}", "quality") in report.stored


def test_observation_level_items_are_queued_as_observations(fake: FakeLangfuse, lf_settings: Settings) -> None:
    run = run_context(lf_settings, item_level="observation")
    report = publish(lf_settings, scored(4, observation_level=True), run, review=REVIEW, regression_dataset=DATASET)
    assert report.ok, report.error
    assert {(i["objectType"], i["objectId"]) for i in fake.queue_items_of(QUEUE)} == {
        ("OBSERVATION", "obs-0"),
        ("OBSERVATION", "obs-1"),
    }
    assert {(i["sourceTraceId"], i["sourceObservationId"]) for i in fake.state.dataset_items.values()} == {
        (f"{0:032x}", "obs-0"),
        (f"{1:032x}", "obs-1"),
    }


# -- a real run killed in the middle of queueing -----------------------------------------------------
class HangsWhileQueueing(FakeLangfuse):
    """After storing the `hang_at`-th queue item, holds the answer until released (the run is killed then)."""

    hang_at = 3

    def __init__(self) -> None:
        super().__init__()
        self.hanging = threading.Event()
        self.release = threading.Event()

    async def _queue_items(self, request: Request) -> Response:
        response = await super()._queue_items(request)
        if request.method == "POST" and len(self.state.queue_items) >= self.hang_at and not self.release.is_set():
            self.hanging.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return response


def evalmon_run(fake: FakeLangfuse, config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, **fake.env(), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "run", str(config), "--json"],
        cwd=config.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_queue_and_dataset_hold_each_failure_once_after_a_kill(tmp_path: Path) -> None:
    config = tmp_path / "review.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "monitor": "athena-review-kill",
                "source": {"type": "langfuse", "trace_name": "athena", "retry_initial_s": 0.01, "retry_max_s": 0.05},
                "window": {"since": iso(WINDOW_SINCE), "until": iso(WINDOW_UNTIL)},
                "metrics": [{"key": "regex_match", "name": "mentions_lisbon", "params": {"pattern": "Lisbon|Porto"}}],
                "evaluation": {"chunk_size": 8},
                "dedup": {"store": "csv", "path": str(tmp_path / "scored_items.csv")},
                "publish": {
                    "local": {"dir": str(tmp_path / "runs")},
                    "langfuse": {"enabled": True, "review": REVIEW, "regression_dataset": DATASET},
                },
            }
        ),
        encoding="utf-8",
    )
    with HangsWhileQueueing() as fake:
        fake.seed_observations(generate_traces(24, since=WINDOW_SINCE, until=WINDOW_UNTIL))
        failing = {
            r["traceId"]
            for r in fake.state.observations
            if r["type"] == "SPAN" and "Lisbon" not in r["output"] and "Porto" not in r["output"]
        }
        killed = evalmon_run(fake, config)
        assert fake.hanging.wait(120), killed.communicate(timeout=5)
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        fake.release.set()
        assert 0 < len(queued(fake)) < len(failing)

        for attempt in range(2):  # the run after the kill finishes the work; the one after finds nothing new
            done = evalmon_run(fake, config)
            _, stderr = done.communicate(timeout=240)
            assert done.returncode == 0, stderr[-3000:]
            assert queued(fake) == Counter(failing), attempt
        assert len(failing) == 18  # 6 of the 24 answers mention Lisbon or Porto
        sources = Counter(i["sourceTraceId"] for i in fake.state.dataset_items.values())
        assert sources == Counter(failing)
