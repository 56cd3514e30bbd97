"""Where a baseline comes from: Postgres, the scores published to Langfuse, or the runs folder.

Each history is written the way evalmon writes it (the Postgres and Langfuse sinks, summary.json)
and read back by the reader the baseline alerts use.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.langfuse_server import FakeLangfuse
from pydantic import SecretStr

from shared.database.sink import PostgresSink
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricResult
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.langfuse.client import make_client
from shared.langfuse.sink import LangfuseSink
from shared.monitoring.alerts import BaselineRequest, HistoryReader
from shared.monitoring.config import AlertsConfig, LangfusePublishConfig, MonitorConfig
from shared.monitoring.run_context import RunContext, new_run_id
from shared.monitoring.window import Window
from shared.reporting.history import langfuse_history, postgres_history, runs_folder_history
from shared.settings import Settings

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def context(settings: Settings, hour: int, *, monitor: str = "hist", base_dir: Path = Path(".")) -> RunContext:
    config = MonitorConfig.model_validate(
        {
            "monitor": monitor,
            "source": {"type": "file", "path": "x.jsonl"},
            "metrics": [{"key": "non_empty", "name": "faithfulness"}],
            "publish": {"local": {"dir": "runs"}, "postgres": True, "langfuse": True},
        }
    )
    until = T0 + timedelta(hours=hour + 1)
    return RunContext(
        run_id=new_run_id(monitor, now=until + timedelta(minutes=10)),
        monitor=monitor,
        config=config,
        config_hash=config.config_hash(),
        source_key="file",
        window=Window(until - timedelta(hours=1), until),
        settings=settings,
        base_dir=base_dir,
    )


def rows(run: RunContext, scores: list[float], *, version: str = "v1", errors: int = 0) -> EvaluationResult:
    out = []
    for i, score in enumerate(scores + [float("nan")] * errors):
        item = DatasetItem(
            id=f"{run.run_id}-{i}",
            trace_id=f"t-{run.run_id}-{i}",
            source_timestamp=run.window.since + timedelta(minutes=i),
        )
        result = (
            MetricResult.failure("judge timed out")
            if i >= len(scores)
            else MetricResult(score=score, threshold=0.5, passed=score >= 0.5)
        )
        out.append(ResultRow(item, "faithfulness", "non_empty", version, "numeric", result))
    return EvaluationResult(rows=out)


def test_postgres_history_sums_each_finished_runs_rows_of_the_current_version(migrated: Settings) -> None:
    async def publish(run: RunContext, result: EvaluationResult, status: str = "ok") -> None:
        sink = PostgresSink(migrated)
        try:
            await sink.check(run)
            await sink.publish(run, result)
            await sink.finish(run, {"status": status, "counts": {}})
        finally:
            await sink.aclose()

    runs = [context(migrated, hour) for hour in range(4)]
    asyncio.run(publish(runs[0], rows(runs[0], [1.0, 0.0, 1.0, 1.0], errors=1)))
    asyncio.run(publish(runs[1], rows(runs[1], [0.2, 0.4])))
    asyncio.run(publish(runs[2], rows(runs[2], [1.0] * 3, version="v2")))  # another judge prompt
    asyncio.run(publish(runs[3], rows(runs[3], [0.0] * 3), status="failed"))
    found = asyncio.run(
        postgres_history(migrated, "hist", {"faithfulness": "v1"}, before=T0 + timedelta(days=1), exclude_run_id="x")
    )
    by_run = {r.run_id: r.metrics.get("faithfulness") for r in found}
    assert list(by_run) == [runs[2].run_id, runs[1].run_id, runs[0].run_id]  # newest first; the failed run is out
    assert by_run[runs[2].run_id] is None  # finished, but no v1 rows
    first = by_run[runs[0].run_id]
    assert first is not None and (first.n, first.judged, first.passed, first.errors) == (4, 4, 3, 1)
    assert first.moments.mean == pytest.approx(0.75) and first.moments.variance == pytest.approx(0.25)
    limited = asyncio.run(
        postgres_history(
            migrated,
            "hist",
            {"faithfulness": "v1"},
            before=runs[2].window.until,
            exclude_run_id=runs[1].run_id,
            runs_limit=5,
        )
    )
    assert [r.run_id for r in limited] == [runs[0].run_id]


def test_langfuse_history_reads_back_the_monitors_own_scores_by_run() -> None:
    with FakeLangfuse() as fake:
        settings = Settings(
            langfuse_base_url=fake.url,
            langfuse_public_key=fake.public_key,
            langfuse_secret_key=SecretStr(fake.secret_key),
        )

        async def publish(run: RunContext, result: EvaluationResult) -> None:
            report = await LangfuseSink(settings, LangfusePublishConfig()).publish(run, result)
            assert report.error is None

        runs = [context(settings, hour) for hour in range(3)]
        asyncio.run(publish(runs[0], rows(runs[0], [1.0, 0.0, 1.0, 1.0], errors=1)))
        asyncio.run(publish(runs[1], rows(runs[1], [0.2, 0.4])))
        asyncio.run(publish(runs[2], rows(runs[2], [0.9] * 3, version="v2")))
        other = context(settings, 1, monitor="someone_else")  # same metric name, another monitor
        asyncio.run(publish(other, rows(other, [0.0] * 5)))

        client = make_client(settings)
        found = asyncio.run(
            langfuse_history(
                client,
                "hist",
                {"faithfulness": "v1"},
                since=T0,
                until=T0 + timedelta(hours=2),  # scores carry their trace's time: run 2's are outside
                exclude_run_id="x",
            )
        )
        assert [r.run_id for r in found] == [runs[1].run_id, runs[0].run_id]
        first = found[1].metrics["faithfulness"]
        assert (first.n, first.judged, first.passed, first.errors) == (4, 4, 3, 0)  # errors were never published
        assert first.moments.mean == pytest.approx(0.75)


def write_summary(root: Path, run: RunContext, metrics: dict[str, Any], status: str = "ok") -> None:
    folder = root / run.run_id
    folder.mkdir(parents=True)
    summary = {
        "run_id": run.run_id,
        "monitor": run.monitor,
        "status": status,
        "window": run.window.as_dict(),
        "metrics": metrics,
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


def test_runs_folder_history_picks_finished_runs_by_count_or_days(tmp_path: Path) -> None:
    settings = Settings()
    figures = {"faithfulness": {"n": 10, "judged": 10, "pass_rate": 0.8, "mean": 0.7, "std": 0.1, "errors": 2}}
    runs = [context(settings, hour * 12) for hour in range(6)]  # every 12 hours
    for run in runs:
        write_summary(tmp_path, run, figures)
    write_summary(tmp_path, context(settings, 61), figures, status="failed")
    write_summary(tmp_path, context(settings, 62), figures, status="dry_run")
    write_summary(tmp_path, context(settings, 63, monitor="hist2"), figures)
    (tmp_path / f"{runs[0].run_id[:-2]}zz").mkdir()  # no summary.json: skipped
    old = context(settings, -24)
    write_summary(tmp_path, old, {"faithfulness": {"n": 10, "pass_rate": 0.5, "mean": 0.5}})  # before judged/std

    before = T0 + timedelta(days=10)
    by_count = runs_folder_history(tmp_path, "hist", before=before, exclude_run_id=runs[5].run_id, runs_limit=3)
    assert [r.run_id for r in by_count] == [runs[4].run_id, runs[3].run_id, runs[2].run_id]
    faith = by_count[0].metrics["faithfulness"]
    assert (faith.n, faith.judged, faith.passed, faith.errors) == (10, 10, 8, 2)
    assert faith.moments.variance == pytest.approx(0.01)
    by_days = runs_folder_history(tmp_path, "hist", before=runs[5].window.until, exclude_run_id="x", days=1.4)
    assert [r.run_id for r in by_days] == [runs[4].run_id, runs[3].run_id]
    everything = runs_folder_history(tmp_path, "hist", before=before, exclude_run_id="x")
    oldest = everything[-1].metrics["faithfulness"]
    assert everything[-1].run_id == old.run_id and (oldest.judged, oldest.passed, oldest.moments.n) == (10, 5, 0)


def test_a_history_source_that_is_down_gives_way_to_the_next(tmp_path: Path) -> None:
    settings = Settings(database_url=SecretStr("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"))
    runs = [context(settings, hour, base_dir=tmp_path) for hour in range(3)]
    for run in runs[:2]:
        write_summary(tmp_path / "runs", run, {"faithfulness": {"n": 10, "judged": 10, "pass_rate": 0.8}})
    config = runs[2].config.model_copy(
        update={"publish": runs[2].config.publish.model_copy(update={"langfuse": LangfusePublishConfig(enabled=False)})}
    )
    run = runs[2]
    run.config = config
    reader = HistoryReader(run, {"faithfulness": "v1"}, settings)
    rule = AlertsConfig.model_validate(
        {"rules": [{"metric": "faithfulness", "stat": "pass_rate", "compare": {"runs": 5}}]}
    ).rules[0]
    baseline = asyncio.run(reader.baseline(BaselineRequest(rule, run.window.until, run.window.since)))
    assert baseline is not None and baseline.source == "runs folder" and len(baseline.runs) == 2
    [problem] = reader.problems
    assert "could not read the postgres history" in problem and "nobody" not in problem.split("(", 1)[0]


def test_error_rates_never_ask_langfuse_which_holds_no_errors(tmp_path: Path) -> None:
    settings = Settings()  # no Langfuse keys: asking it would be a recorded problem
    run = context(settings, 5, base_dir=tmp_path)
    write_summary(tmp_path / "runs", context(settings, 1), {"faithfulness": {"n": 10, "errors": 3}})
    reader = HistoryReader(run, {"faithfulness": "v1"}, settings)
    rules = AlertsConfig.model_validate(
        {"rules": [{"metric": "faithfulness", "stat": s, "compare": {"runs": 5}} for s in ("error_rate", "mean")]}
    ).rules
    errors = asyncio.run(reader.baseline(BaselineRequest(rules[0], run.window.until, run.window.since)))
    assert errors is not None and errors.source == "runs folder" and reader.problems == []
    asyncio.run(reader.baseline(BaselineRequest(rules[1], run.window.until, run.window.since)))
    assert "could not read the langfuse history" in reader.problems[0]
