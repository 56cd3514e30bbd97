"""A synthetic judged project: judge scores published the way a monitor publishes them, and human
labels that agree with the judge perfectly, by chance, or the other way round."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricResult
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.langfuse.sink import LangfuseSink
from shared.monitoring.config import LangfusePublishConfig, MonitorConfig
from shared.monitoring.run_context import RunContext
from shared.monitoring.window import Window, iso
from shared.settings import Settings
from tests.fakes.langfuse_server import FakeLangfuse

MONITOR = "athena-judge"
METRIC = "faithfulness_judge"  # grounding_overlap under a judge's name: numeric, higher is better
THRESHOLD = 0.5
HUMAN = "human_review"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
Agreement = Literal["perfect", "chance", "inverted"]


@dataclass(frozen=True)
class Judged:
    trace_id: str
    score: float

    @property
    def passed(self) -> bool:
        return self.score >= THRESHOLD


def judged(n: int, *, seed: int = 3, prefix: str = "") -> list[Judged]:
    """n traces with judge scores spread over 0..1 (about half pass)."""
    rng = random.Random(seed)
    return [Judged(f"{prefix}{uuid.UUID(int=rng.getrandbits(128)).hex}", round(rng.random(), 3)) for _ in range(n)]


def human_verdicts(items: list[Judged], agreement: Agreement, *, seed: int = 11) -> dict[str, bool]:
    rng = random.Random(seed)
    if agreement == "perfect":
        return {j.trace_id: j.passed for j in items}
    if agreement == "inverted":
        return {j.trace_id: not j.passed for j in items}
    return {j.trace_id: rng.random() < 0.5 for j in items}


def config_file(tmp_path: Path, **extra: Any) -> Path:
    body: dict[str, Any] = {
        "monitor": MONITOR,
        "source": {"type": "langfuse", "retry_initial_s": 0.01, "retry_max_s": 0.05},
        "window": {"since": iso(T0 - timedelta(hours=1)), "until": iso(T0)},
        "metrics": [{"key": "grounding_overlap", "name": METRIC, "threshold": THRESHOLD}],
        "dedup": {"store": "csv", "path": str(tmp_path / "scored_items.csv")},
        "publish": {"local": {"dir": str(tmp_path / "runs")}},
        **extra,
    }
    path = tmp_path / f"{MONITOR}.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def run_context(settings: Settings, *, run_id: str = "run-judge-1") -> RunContext:
    config = MonitorConfig.model_validate(
        {"monitor": MONITOR, "source": {"type": "langfuse"}, "metrics": [{"key": "grounding_overlap", "name": METRIC}]}
    )
    return RunContext(
        run_id=run_id,
        monitor=MONITOR,
        config=config,
        config_hash=config.config_hash(),
        source_key="langfuse",
        window=Window(T0 - timedelta(hours=1), T0),
        settings=settings,
        base_dir=Path.cwd(),
    )


def judge_rows(items: list[Judged], *, version: str = "v1", item_id_prefix: str = "") -> EvaluationResult:
    rows = []
    for k, j in enumerate(items):
        item = DatasetItem(
            id=f"{item_id_prefix}{j.trace_id}", trace_id=j.trace_id, source_timestamp=T0 - timedelta(minutes=k % 50)
        )
        result = MetricResult(score=j.score, passed=j.passed, threshold=THRESHOLD, explanation="judge says so")
        rows.append(
            ResultRow(
                item=item,
                metric_name=METRIC,
                metric_key="grounding_overlap",
                metric_version=version,
                score_type="numeric",
                result=result,
            )
        )
    return EvaluationResult(rows)


def publish_to_langfuse(settings: Settings, rows: EvaluationResult, *, run_id: str = "run-judge-1") -> None:
    sink = LangfuseSink(settings, LangfusePublishConfig(enabled=True), retry_initial_s=0.01, retry_max_s=0.05)
    report = asyncio.run(sink.publish(run_context(settings, run_id=run_id), rows))
    assert report.ok and len(report.stored) == len(rows), report.error


def seed_labels(
    fake: FakeLangfuse,
    verdicts: dict[str, bool],
    *,
    name: str = HUMAN,
    source: str = "ANNOTATION",
    at: datetime = T0 + timedelta(days=1),
) -> None:
    """People's pass/fail labels on the traces, as BOOLEAN scores from an annotation queue."""
    for trace_id, ok in verdicts.items():
        fake.seed_score(
            id=str(uuid.uuid4()),
            traceId=trace_id,
            name=name,
            value=1 if ok else 0,
            dataType="BOOLEAN",
            source=source,
            timestamp=at,
        )
