"""LangfuseSink against the loopback fake: idempotent ids, confirmed stores, failures reported."""

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from conftest import WINDOW_SINCE, WINDOW_UNTIL
from fakes.langfuse_server import FakeLangfuse

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricResult
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.langfuse.score_body import score_id
from shared.langfuse.sink import LangfuseSink
from shared.monitoring.config import LangfusePublishConfig, MonitorConfig
from shared.monitoring.run_context import RunContext
from shared.monitoring.window import Window
from shared.settings import Settings


def run_context(settings: Settings, item_level: str = "trace", run_id: str = "run-1") -> RunContext:
    config = MonitorConfig.model_validate(
        {
            "monitor": "athena-quality",
            "item_level": item_level,
            "source": {"type": "langfuse"},
            "metrics": [{"key": "non_empty"}],
        }
    )
    return RunContext(
        run_id=run_id,
        monitor="athena-quality",
        config=config,
        config_hash=config.config_hash(),
        source_key="langfuse",
        window=Window(WINDOW_SINCE, WINDOW_UNTIL),
        settings=settings,
        base_dir=Path.cwd(),
    )


def results(n: int, *, observation_level: bool = False) -> EvaluationResult:
    rows: list[ResultRow] = []
    for i in range(n):
        trace_id = f"{i:032x}"
        item = DatasetItem(
            id=f"obs-{i}" if observation_level else trace_id,
            trace_id=trace_id,
            observation_id=f"obs-{i}" if observation_level else None,
            source_timestamp=WINDOW_SINCE + timedelta(seconds=i),
        )
        rows.append(row(item, "quality", "numeric", MetricResult(score=i / n, explanation=f"why {i}", threshold=0.5)))
        rows.append(row(item, "non_empty", "boolean", MetricResult(score=1.0, passed=True)))
        rows.append(row(item, "tone", "categorical", MetricResult(label="polite", model="gpt-4o-mini")))
    return EvaluationResult(rows)


def row(item: DatasetItem, name: str, score_type: str, result: MetricResult) -> ResultRow:
    return ResultRow(
        item=item, metric_name=name, metric_key=name, metric_version="v1", score_type=score_type, result=result
    )


def publish(settings: Settings, res: EvaluationResult, run: RunContext | None = None, **kwargs: Any) -> Any:
    sink = LangfuseSink(
        settings,
        LangfusePublishConfig(enabled=True, environment="production"),
        retry_initial_s=0.01,
        retry_max_s=0.05,
        **kwargs,
    )
    return asyncio.run(sink.publish(run or run_context(settings), res))


def test_one_score_per_pair_with_type_comment_metadata_and_environment(
    fake: FakeLangfuse, lf_settings: Settings
) -> None:
    res = results(30)
    report = publish(lf_settings, res)
    assert report.ok, report.error
    assert report.stored == {(r.item.id, r.metric_name) for r in res}
    stored = {s["id"]: s for s in fake.scores()}
    assert len(stored) == 90
    numeric = stored[score_id("athena-quality", "langfuse", f"{3:032x}", "quality")]
    assert numeric["dataType"] == "NUMERIC" and numeric["value"] == 0.1
    assert numeric["comment"] == "why 3"
    assert numeric["traceId"] == f"{3:032x}" and numeric["observationId"] is None
    assert numeric["environment"] == "production"
    assert numeric["metadata"]["run_id"] == "run-1" and numeric["metadata"]["metric_version"] == "v1"
    assert numeric["timestamp"].startswith("2026-11-22T11:00:03")  # the item's time: reruns update in place
    boolean = stored[score_id("athena-quality", "langfuse", f"{3:032x}", "non_empty")]
    assert boolean["dataType"] == "BOOLEAN" and boolean["value"] is True
    categorical = stored[score_id("athena-quality", "langfuse", f"{3:032x}", "tone")]
    assert categorical["dataType"] == "CATEGORICAL" and categorical["value"] == "polite"
    assert categorical["metadata"]["model"] == "gpt-4o-mini"


def test_republishing_updates_instead_of_duplicating(fake: FakeLangfuse, lf_settings: Settings) -> None:
    publish(lf_settings, results(10))
    first = fake.score_ids()
    report = publish(lf_settings, results(10), run_context(lf_settings, run_id="run-2"))
    assert report.ok and fake.score_ids() == first
    assert {s["metadata"]["run_id"] for s in fake.scores()} == {"run-2"}


def test_error_skipped_and_deferred_rows_are_not_published(fake: FakeLangfuse, lf_settings: Settings) -> None:
    item = DatasetItem(id="t1", trace_id="t1")
    res = EvaluationResult(
        [
            row(item, "a", "numeric", MetricResult.failure("judge said nonsense")),
            row(item, "b", "numeric", MetricResult.skipped("no output")),
            row(item, "c", "numeric", MetricResult.deferred("budget")),
            row(item, "d", "numeric", MetricResult(score=0.5)),
        ]
    )
    report = publish(lf_settings, res)
    assert report.ok and report.stored == {("t1", "d")}
    assert [s["name"] for s in fake.scores()] == ["d"]


def test_observation_level_scores_attach_to_the_observation(fake: FakeLangfuse, lf_settings: Settings) -> None:
    report = publish(lf_settings, results(3, observation_level=True), run_context(lf_settings, "observation"))
    assert report.ok
    assert {(s["traceId"], s["observationId"]) for s in fake.scores()} == {(f"{i:032x}", f"obs-{i}") for i in range(3)}


def test_failed_writes_are_reported_and_only_confirmed_pairs_stored(fake: FakeLangfuse, lf_settings: Settings) -> None:
    fake.set_faults(fail_writes_after=100)
    res = results(100)  # 300 scores, 3 batches of 100: the server stores the first one only
    report = publish(lf_settings, res, max_retries=2, concurrency=1)
    assert not report.ok and "200 of 300" in (report.error or "")
    assert len(report.stored) == 100
    stored_pairs = {(s["traceId"], s["name"]) for s in fake.scores()}
    assert report.stored == stored_pairs  # never claims a pair the server does not hold
    fake.set_faults()
    rerun = publish(lf_settings, res)
    assert rerun.ok and len(fake.score_ids()) == 300


def test_partial_batch_207_is_resolved_by_reading_back(fake: FakeLangfuse, lf_settings: Settings) -> None:
    fake.set_faults(reject_score_names={"tone"})
    report = publish(lf_settings, results(10))
    assert not report.ok and "rejected by configuration" in (report.error or "")
    assert report.stored == {(f"{i:032x}", name) for i in range(10) for name in ("quality", "non_empty")}
    assert fake.requests["GET /api/public/v3/scores"] >= 1


def test_injected_5xx_and_429_lose_nothing(fake: FakeLangfuse, lf_settings: Settings) -> None:
    fake.set_faults(error_rate=0.2, rate_limit_every=3)
    report = publish(lf_settings, results(200), batch_size=50, max_retries=12)  # 0.47**12: no flake
    assert report.ok, report.error
    assert len(report.stored) == 600 and len(fake.score_ids()) == 600
    assert fake.statuses[503] + fake.statuses[429] > 0


def test_read_back_mode_confirms_every_score(fake: FakeLangfuse, lf_settings: Settings) -> None:
    report = publish(lf_settings, results(40), read_back=True)
    assert report.ok and len(report.stored) == 120
    assert fake.requests["GET /api/public/v3/scores"] == 2  # 100 ids per read


def test_scores_without_a_trace_id_are_a_sink_failure(fake: FakeLangfuse, lf_settings: Settings) -> None:
    item = DatasetItem(id="o1", observation_id=None, trace_id=None)
    res = EvaluationResult([row(item, "quality", "numeric", MetricResult(score=1.0))])
    report = publish(lf_settings, res, run=run_context(lf_settings, "observation"))
    assert not report.ok and "no observation id" in (report.error or "")
    assert fake.scores() == []
