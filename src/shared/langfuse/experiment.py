"""Experiment mode of the Langfuse sink (`publish.langfuse.experiment: true`).

A run also appears in Langfuse as an experiment over a dataset, so runs can be compared in
Langfuse's experiment UI. Everything goes through the official SDK:

DATAFLOW (after the scores are confirmed on the source traces by the sink):
  confirmed scores grouped by item
  -> dataset `dataset_name` (default `evalmon-<monitor>`), `api.datasets.create` (upsert by name)
  -> one dataset item per item, `api.dataset_items.create` with a deterministic id (uuid5 of the
     dataset, monitor, source key and item id; upserted on rerun) and `sourceTraceId` /
     `sourceObservationId` pointing at the scored trace or observation
  -> `Langfuse.run_experiment(run_name=run_id, experiment_id=<deterministic>, data=<those items>)`
     whose task returns the output evalmon already extracted and whose evaluator returns the
     scores evalmon already computed: nothing is recomputed. The SDK records the experiment
     items and their scores through OpenTelemetry (`POST /api/public/otel/v1/traces`), which is
     Langfuse v4's replacement for the deprecated `POST /api/public/dataset-run-items`.
  -> confirmation: `GET /api/public/experiment-items?experimentId=...&fields=core,scores` is
     polled until every item is there with every score; an item that does not show up is a
     sink failure (its pairs are not recorded in the ledger, so the next run redoes them).

Why confirm: the SDK's span exporter and score queue both drop a failed batch after their own
retries without raising, so `flush()` proves nothing.

The scores on the source traces (deterministic ids, written by the sink) carry the experiment id,
dataset name and dataset item id in their metadata. They do not set `datasetRunId`: in Langfuse a
score with a `datasetRunId` is a score *of the run itself*, not of one trace.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from langfuse import Evaluation, Langfuse
from langfuse.api.commons.types.dataset_item import DatasetItem as LangfuseDatasetItem
from langfuse.api.core import ApiError

from shared.errors import ConfigError, TransientError
from shared.evaluation.item import DatasetItem
from shared.langfuse.client import call_api
from shared.langfuse.score_body import PreparedScore
from shared.monitoring.config import LangfusePublishConfig
from shared.monitoring.run_context import RunContext
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.evaluation.results import EvaluationResult
    from shared.langfuse.sink import LangfuseSink
    from shared.monitoring.sinks.base import SinkReport

# Fixed namespace: dataset item ids must be the same on every machine and every run, forever.
DATASET_ITEM_NAMESPACE = uuid.UUID("0c0f6a52-3a1e-5b6f-8d7e-2f4b9a1c7e55")
EVALUATOR_NAME = "evalmon"
READ_BACK_PAGE = 100  # GET /api/public/experiment-items accepts at most 100 per page


def dataset_name_for(monitor: str, config: LangfusePublishConfig) -> str:
    return config.dataset_name or f"evalmon-{monitor}"


def dataset_item_id(dataset: str, monitor: str, source_key: str, item_id: str) -> str:
    """Deterministic, and different per dataset (Langfuse item ids are global to a project)."""
    return str(uuid.uuid5(DATASET_ITEM_NAMESPACE, "\x1f".join((dataset, monitor, source_key, item_id))))


def experiment_id_for(dataset: str, run_id: str) -> str:
    """One experiment per (dataset, run): the same id if a run's experiment is written twice."""
    return Langfuse.create_trace_id(seed=f"evalmon-experiment\x1f{dataset}\x1f{run_id}")


@dataclass
class ExperimentOutcome:
    experiment_id: str
    dataset: str
    confirmed: set[str] = field(default_factory=set)  # evalmon item ids found with all their scores
    failures: list[str] = field(default_factory=list)
    url: str | None = None


class ExperimentPublisher:
    """Records one run as a Langfuse experiment over the monitor's dataset."""

    def __init__(
        self,
        settings: Settings,
        config: LangfusePublishConfig,
        run: RunContext,
        *,
        api: Langfuse,
        attempts: int = 7,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        concurrency: int = 4,
        read_back_timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.run = run
        self.api = api
        self.attempts = attempts
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.concurrency = concurrency
        self.read_back_timeout_s = read_back_timeout_s
        self.dataset = dataset_name_for(run.monitor, config)
        self.experiment_id = experiment_id_for(self.dataset, run.run_id)

    def item_id(self, item_id: str) -> str:
        return dataset_item_id(self.dataset, self.run.monitor, self.run.source_key, item_id)

    def annotate(self, scores: Sequence[PreparedScore]) -> list[PreparedScore]:
        """The same scores, their metadata naming the experiment, dataset and dataset item."""
        out: list[PreparedScore] = []
        for score in scores:
            metadata = {
                **(score.body.metadata or {}),
                "experiment_id": self.experiment_id,
                "dataset_name": self.dataset,
                "dataset_item_id": self.item_id(score.pair[0]),
            }
            out.append(PreparedScore(score.pair, score.body.model_copy(update={"metadata": metadata}), score.id))
        return out

    async def publish(self, scores: Sequence[PreparedScore], items: dict[str, DatasetItem]) -> ExperimentOutcome:
        """Dataset, dataset items, experiment run; returns the item ids Langfuse confirmed."""
        outcome = ExperimentOutcome(experiment_id=self.experiment_id, dataset=self.dataset)
        by_item: dict[str, list[PreparedScore]] = {}
        for score in scores:
            by_item.setdefault(score.pair[0], []).append(score)
        if not by_item:
            return outcome
        try:
            await self._call(
                self.api.api.datasets.create,
                name=self.dataset,
                description=f"Items scored by the evalmon monitor {self.run.monitor!r}",
                metadata={"monitor": self.run.monitor, "source_key": self.run.source_key},
            )
        except (TransientError, ApiError) as exc:
            outcome.failures.append(f"creating dataset {self.dataset!r} failed ({_describe(exc)})")
            return outcome
        created = await self._create_items(by_item, items, outcome)
        if not created:
            return outcome
        started = datetime.now(UTC)
        try:
            outcome.url = await asyncio.to_thread(self._run_experiment, created, by_item, items)
        except Exception as exc:  # the SDK's own setup errors: the experiment is missing, say why
            outcome.failures.append(f"run_experiment failed ({type(exc).__name__}: {exc})")
            return outcome
        expected = {self.item_id(i): (i, {s.body.name for s in by_item[i]}) for i in created}
        outcome.confirmed = await self._confirm(expected, started, outcome)
        return outcome

    async def _create_items(
        self,
        by_item: dict[str, list[PreparedScore]],
        items: dict[str, DatasetItem],
        outcome: ExperimentOutcome,
    ) -> dict[str, LangfuseDatasetItem]:
        semaphore = asyncio.Semaphore(self.concurrency)
        created: dict[str, LangfuseDatasetItem] = {}

        async def one(item_id: str) -> None:
            item = items[item_id]
            score = by_item[item_id][0].body
            async with semaphore:
                try:
                    created[item_id] = await self._call(
                        self.api.api.dataset_items.create,
                        dataset_name=self.dataset,
                        id=self.item_id(item_id),
                        input=_input_of(item),
                        expected_output=item.expected_output,
                        metadata={
                            "evalmon_item_id": item.id,
                            "monitor": self.run.monitor,
                            "source_key": self.run.source_key,
                        },
                        source_trace_id=score.trace_id,
                        source_observation_id=score.observation_id,
                    )
                except (TransientError, ApiError) as exc:
                    outcome.failures.append(f"creating dataset items failed ({_describe(exc)})")

        await asyncio.gather(*(one(i) for i in by_item if i in items))
        return created

    def _run_experiment(
        self,
        created: dict[str, LangfuseDatasetItem],
        by_item: dict[str, list[PreparedScore]],
        items: dict[str, DatasetItem],
    ) -> str | None:
        """Runs in a worker thread (the SDK runs its own event loop there)."""
        outputs = {self.item_id(i): _output_of(items[i]) for i in created}
        evaluations = {self.item_id(i): [_evaluation(s) for s in by_item[i]] for i in created}

        def task(*, item: Any, **_: Any) -> Any:
            return outputs[item.id]

        def evalmon(*, metadata: Any = None, **_: Any) -> list[Evaluation]:
            return evaluations[self.item_id(str((metadata or {})["evalmon_item_id"]))]

        with tracing_client(self.settings) as client:
            result = client.run_experiment(
                name=f"evalmon {self.run.monitor}",
                run_name=self.run.run_id,
                description=f"evalmon run {self.run.run_id} of monitor {self.run.monitor!r}",
                data=list(created.values()),
                task=task,
                evaluators=[evalmon],
                max_concurrency=self.concurrency * 4,
                metadata=self.run.provenance(),
                experiment_id=self.experiment_id,
            )
        return result.experiment_url

    async def _confirm(
        self, expected: dict[str, tuple[str, set[str]]], started: datetime, outcome: ExperimentOutcome
    ) -> set[str]:
        """Poll the experiment's items until each is there with all its scores, or time runs out."""
        pending = dict(expected)
        confirmed: set[str] = set()
        deadline = time.monotonic() + self.read_back_timeout_s
        delay = 0.2
        since = started - timedelta(minutes=5)  # tolerate clock skew between us and the server
        while pending:
            try:
                seen = await self._experiment_scores(since)
            except (TransientError, ApiError) as exc:
                outcome.failures.append(f"reading experiment items back failed ({_describe(exc)})")
                break
            for dataset_item, (item_id, names) in list(pending.items()):
                if names <= seen.get(dataset_item, set()):
                    confirmed.add(item_id)
                    del pending[dataset_item]
            if not pending or time.monotonic() >= deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        if pending:
            outcome.failures.append(
                f"{len(pending)} of {len(expected)} item(s) not found with all their scores in experiment "
                f"{self.experiment_id} after {self.read_back_timeout_s:g}s"
            )
        return confirmed

    async def _experiment_scores(self, since: datetime) -> dict[str, set[str]]:
        """experimentItemId -> names of the scores Langfuse holds for it."""
        seen: dict[str, set[str]] = {}
        cursor: str | None = None
        while True:
            page = await self._call(
                self.api.api.experiments.list_items,
                from_start_time=since,
                experiment_id=self.experiment_id,
                fields="core,scores",
                limit=READ_BACK_PAGE,
                cursor=cursor,
            )
            for row in page.data:
                seen.setdefault(row.experiment_item_id, set()).update(s.name for s in row.scores or [])
            cursor = page.meta.cursor
            if not cursor or not page.data:
                return seen

    async def _call(self, fn: Any, **kwargs: Any) -> Any:
        return await call_api(
            fn,
            attempts=self.attempts,
            initial_wait=self.retry_initial_s,
            max_wait=self.retry_max_s,
            **kwargs,
        )


async def publish_experiment(
    sink: LangfuseSink,
    run: RunContext,
    results: EvaluationResult,
    scores: Sequence[PreparedScore],
    report: SinkReport,
) -> None:
    """The sink's hook: record the confirmed scores' items as an experiment, update the report.

    Pairs of items the experiment could not confirm leave `report.stored` (the ledger will not
    record them) and the report gets an error.
    """
    publisher = experiment_publisher(sink, run)
    stored = [s for s in scores if s.pair in report.stored]
    items = {row.item.id: row.item for row in results}
    outcome = await publisher.publish(stored, items)
    attempted = {s.pair[0] for s in stored}
    lost = attempted - outcome.confirmed
    report.stored = {pair for pair in report.stored if pair[0] not in lost}
    report.details["experiment"] = {
        "dataset": outcome.dataset,
        "experiment_id": outcome.experiment_id,
        "run_name": run.run_id,
        "items": len(outcome.confirmed),
        "url": outcome.url,
    }
    if lost:
        reasons = "; ".join(dict.fromkeys(outcome.failures)) or "not confirmed"
        text = f"experiment: {len(lost)} of {len(attempted)} item(s) not recorded: {reasons[:500]}"
        report.error = f"{report.error}; {text}" if report.error else text


def experiment_publisher(sink: LangfuseSink, run: RunContext) -> ExperimentPublisher:
    return ExperimentPublisher(
        sink.settings,
        sink.config,
        run,
        api=sink.client,
        attempts=sink.max_retries + 1,
        retry_initial_s=sink.retry_initial_s,
        retry_max_s=sink.retry_max_s,
        concurrency=sink.concurrency,
        read_back_timeout_s=sink.read_back_timeout_s,
    )


@contextmanager
def tracing_client(settings: Settings) -> Iterator[Langfuse]:
    """A Langfuse client with tracing on, on a private OpenTelemetry TracerProvider.

    The SDK keeps one resource manager per public key for the whole process, and evalmon's other
    clients are created with tracing off; so the existing one is set aside while this client
    lives and put back afterwards. The private provider keeps evalmon from installing a global
    OpenTelemetry provider as a side effect.
    """
    from langfuse._client.resource_manager import LangfuseResourceManager
    from opentelemetry.sdk.trace import TracerProvider

    public_key = settings.langfuse_public_key
    secret = settings.langfuse_secret_key.get_secret_value() if settings.langfuse_secret_key else None
    if not public_key or not secret:
        raise ConfigError("Langfuse credentials are missing: set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY")
    provider = TracerProvider()
    with LangfuseResourceManager._lock:
        previous = LangfuseResourceManager._instances.pop(public_key, None)
    try:
        yield Langfuse(
            public_key=public_key,
            secret_key=secret,
            base_url=settings.langfuse_base_url.rstrip("/"),
            timeout=max(1, int(settings.langfuse_timeout_s + 0.999)),
            tracing_enabled=True,
            tracer_provider=provider,
        )
    finally:
        with LangfuseResourceManager._lock:
            mine = LangfuseResourceManager._instances.pop(public_key, None)
            if previous is not None:
                LangfuseResourceManager._instances[public_key] = previous
        if mine is not None:
            mine.shutdown()
        provider.shutdown()


def _input_of(item: DatasetItem) -> Any:
    """The dataset item's input: the query, else the conversation, else the item's identity."""
    if item.query is not None:
        return item.query
    if item.conversation:
        return [m.model_dump(mode="json", exclude_none=True) for m in item.conversation]
    return {"item_id": item.id, "trace_id": item.trace_id}


def _output_of(item: DatasetItem) -> Any:
    return item.actual_output if item.actual_output is not None else (item.additional_output or None)


def _evaluation(score: PreparedScore) -> Evaluation:
    body = score.body
    return Evaluation(
        name=body.name,
        value=body.value,  # CreateScoreValue: float | str
        comment=body.comment,
        metadata={**(body.metadata or {}), "source_score_id": score.id, "source_trace_id": body.trace_id},
        data_type=body.data_type,  # type: ignore[arg-type]
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        text = str(exc.body)
        return f"HTTP {exc.status_code}: {text[:200]}"
    return str(exc)
