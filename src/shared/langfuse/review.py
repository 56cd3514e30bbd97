"""The review loop of the Langfuse sink: what the judge flagged goes to people, and failing items
become regression cases (`publish.langfuse.review`, `publish.langfuse.regression_dataset`).

DATAFLOW (after a chunk's scores are confirmed by the sink):
  result rows -> `review.when` (failed | errors | score < x), `review.metrics`
    -> one candidate per trace (or observation, observation-level monitors), at most
       `review.max_per_run` new queue items per run
    -> queue: the oldest annotation queue of that name (`api.annotation_queues.list_queues`), else
       created (`create_queue`) with the score config `review.human_score` (found by name, or
       created BOOLEAN): the score reviewers give and `evalmon calibrate --human` reads back
    -> the queue's items are listed once per run: an object already queued is never added again
       (Langfuse keeps every POST as a new item, so looking first is the only idempotency there is)
    -> `create_queue_item`, never retried blindly: after a lost or failed answer the queue is
       listed again and the item counts as queued only if it is there
  failing rows (ok, passed false) -> `regression_dataset`: the dataset (created when missing) and
    one item per evalmon item, upserted by a deterministic id (`experiment.dataset_item_id`):
    input, expected output when known, the actual output and the failing metrics as metadata,
    the scored trace (and observation) as source
  -> confirmation: the item the API answered with, carrying the requested object or id; pairs of
     an item that was not confirmed leave SinkReport.stored, so the ledger does not record them and
     the next run redoes them (finding what did arrive).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langfuse.api.annotation_queues.types import AnnotationQueueObjectType
from langfuse.api.core import ApiError

from shared.errors import TransientError
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricStatus
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.langfuse.client import call_api
from shared.langfuse.experiment import _input_of, _output_of, dataset_item_id
from shared.monitoring.config import ReviewConfig
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import PairKey, SinkReport

if TYPE_CHECKING:
    from shared.langfuse.sink import LangfuseSink

log = logging.getLogger(__name__)

PAGE = 100  # Langfuse's public pagination accepts at most 100 per page
EXPLANATION_CHARS = 500
QueueObject = tuple[str, str]  # (objectType, objectId)
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class ReviewError(Exception):
    """The queue could not be found or made: nothing of this chunk was queued."""


@dataclass
class LoopOutcome:
    queued: int = 0
    already_queued: int = 0
    over_cap: int = 0
    dataset_items: int = 0
    lost: set[PairKey] = field(default_factory=set)  # pairs whose review or dataset item was not confirmed
    failures: list[str] = field(default_factory=list)


class ReviewLoop:
    """One run's review queue and regression dataset writes (the sink keeps one per run)."""

    def __init__(self, sink: LangfuseSink, run: RunContext) -> None:
        self.sink = sink
        self.run = run
        self.review: ReviewConfig | None = sink.config.review
        self.dataset: str | None = sink.config.regression_dataset
        self.queued_this_run = 0
        self._queue_id: str | None = None
        self._in_queue: set[QueueObject] | None = None
        self._dataset_ready = False

    # -- the sink's hook ------------------------------------------------------------------------
    async def publish(self, results: EvaluationResult, report: SinkReport) -> LoopOutcome:
        outcome = LoopOutcome()
        if self.review is not None:
            await self._review(self.review, results, report, outcome)
        if self.dataset is not None:
            await self._regression_cases(self.dataset, results, report, outcome)
        return outcome

    # -- annotation queue -----------------------------------------------------------------------
    def candidates(
        self, review: ReviewConfig, results: EvaluationResult, stored: set[PairKey]
    ) -> dict[QueueObject, list[ResultRow]]:
        """Queue objects and the rows that flag them, in the order the rows came."""
        condition = review.score_condition()
        flagged: dict[QueueObject, list[ResultRow]] = {}
        for row in results:
            if review.metrics is not None and row.metric_name not in review.metrics:
                continue
            if not _flags(row, review.when, condition):
                continue
            if row.status is MetricStatus.OK and (row.item.id, row.metric_name) not in stored:
                continue  # the score itself is not stored: the next run redoes the pair, and queues it then
            target = self.queue_object(row.item)
            if target is not None:
                flagged.setdefault(target, []).append(row)
        return flagged

    def queue_object(self, item: DatasetItem) -> QueueObject | None:
        if self.run.config.item_level == "observation":
            return ("OBSERVATION", item.observation_id) if item.observation_id else None
        trace_id = item.trace_id or item.id
        return ("TRACE", trace_id) if trace_id else None

    async def _review(
        self, review: ReviewConfig, results: EvaluationResult, report: SinkReport, outcome: LoopOutcome
    ) -> None:
        flagged = self.candidates(review, results, report.stored)
        if not flagged:
            return
        try:
            queue_id = await self._queue(review)
            in_queue = await self._queued_objects(queue_id)
        except (ReviewError, TransientError, ApiError) as exc:
            outcome.failures.append(f"annotation queue {review.queue!r}: {_describe(exc)}")
            outcome.lost.update(_pairs(row for rows in flagged.values() for row in rows))
            return
        to_add: list[QueueObject] = []
        for target in flagged:
            if target in in_queue:
                outcome.already_queued += 1
            elif self.queued_this_run + len(to_add) < review.max_per_run:
                to_add.append(target)
            else:
                outcome.over_cap += 1
        semaphore = asyncio.Semaphore(self.sink.concurrency)

        async def add(target: QueueObject) -> None:
            async with semaphore:
                confirmed, problem = await self._add_item(queue_id, target)
            if confirmed:
                outcome.queued += 1
            else:
                outcome.failures.append(f"queue item {target[0].lower()} {target[1]}: {problem}")
                outcome.lost.update(_pairs(flagged[target]))

        self.queued_this_run += len(to_add)
        await asyncio.gather(*(add(target) for target in to_add))

    async def _queue(self, review: ReviewConfig) -> str:
        if self._queue_id is None:
            found = await self._find_queue(review.queue)
            if found is None:
                config_id = await self._score_config(review.human_score)
                await self._create_once(
                    self.sink.client.api.annotation_queues.create_queue,
                    name=review.queue,
                    score_config_ids=[config_id],
                    description=f"Items the evalmon monitor {self.run.monitor!r} flagged ({review.when})",
                )
                found = await self._find_queue(review.queue)  # the oldest of the name: concurrent creators agree
            if found is None:
                raise ReviewError("not found after creating it")
            self._queue_id = found
        return self._queue_id

    async def _find_queue(self, name: str) -> str | None:
        queues = await self._pages(self.sink.client.api.annotation_queues.list_queues)
        named = sorted((q.created_at, q.id) for q in queues if q.name == name)
        return named[0][1] if named else None

    async def _score_config(self, name: str) -> str:
        configs = await self._pages(self.sink.client.api.score_configs.get)
        found = sorted((c.created_at, c.id) for c in configs if c.name == name and not c.is_archived)
        if found:
            return found[0][1]
        await self._create_once(
            self.sink.client.api.score_configs.create,
            name=name,
            data_type="BOOLEAN",
            description="Does the item pass? Given by reviewers of evalmon's review queue; "
            "`evalmon calibrate --human` compares it with the judge.",
        )
        configs = await self._pages(self.sink.client.api.score_configs.get)
        found = sorted((c.created_at, c.id) for c in configs if c.name == name and not c.is_archived)
        if not found:
            raise ReviewError(f"score config {name!r} not found after creating it")
        return found[0][1]

    async def _queued_objects(self, queue_id: str, *, refresh: bool = False) -> set[QueueObject]:
        if self._in_queue is None or refresh:
            items = await self._pages(self.sink.client.api.annotation_queues.list_queue_items, queue_id)
            self._in_queue = {(str(i.object_type), i.object_id) for i in items}
        return self._in_queue

    async def _add_item(self, queue_id: str, target: QueueObject) -> tuple[bool, str]:
        """(confirmed, why not). A lost answer is checked by listing the queue, never by posting again
        until the listing says the item is not there."""
        object_type, object_id = target
        problem = "not confirmed"
        for attempt in range(self.sink.max_retries + 1):
            try:
                item = await self._call(
                    self.sink.client.api.annotation_queues.create_queue_item,
                    queue_id,
                    object_id=object_id,
                    object_type=AnnotationQueueObjectType(object_type),
                    attempts=1,
                )
            except ApiError as exc:
                return False, _describe(exc)
            except TransientError as exc:
                problem = _describe(exc)
                await asyncio.sleep(min(self.sink.retry_initial_s * 2**attempt, self.sink.retry_max_s))
                try:
                    if target in await self._queued_objects(queue_id, refresh=True):
                        return True, ""
                except (TransientError, ApiError) as listing:
                    return False, f"{problem}; listing the queue failed ({_describe(listing)})"
                continue
            if item.object_id == object_id and item.queue_id == queue_id:
                assert self._in_queue is not None
                self._in_queue.add(target)
                return True, ""
            return False, f"the answer names another object ({item.object_id})"
        return False, problem

    # -- regression dataset ---------------------------------------------------------------------
    async def _regression_cases(
        self, dataset: str, results: EvaluationResult, report: SinkReport, outcome: LoopOutcome
    ) -> None:
        failing: dict[str, list[ResultRow]] = {}
        for row in results:
            if (
                row.status is MetricStatus.OK
                and row.result.passed is False
                and (row.item.id, row.metric_name) in report.stored
            ):
                failing.setdefault(row.item.id, []).append(row)
        if not failing:
            return
        try:
            await self._dataset(dataset)
        except (TransientError, ApiError) as exc:
            outcome.failures.append(f"dataset {dataset!r}: {_describe(exc)}")
            outcome.lost.update(_pairs(row for rows in failing.values() for row in rows))
            return
        semaphore = asyncio.Semaphore(self.sink.concurrency)

        async def upsert(rows: list[ResultRow]) -> None:
            wanted = dataset_item_id(dataset, self.run.monitor, self.run.source_key, rows[0].item.id)
            async with semaphore:
                try:
                    stored = await self._call(
                        self.sink.client.api.dataset_items.create, **self._dataset_item(dataset, wanted, rows)
                    )
                except (TransientError, ApiError) as exc:
                    outcome.failures.append(f"dataset item for {rows[0].item.id!r}: {_describe(exc)}")
                    outcome.lost.update(_pairs(rows))
                    return
            if stored.id == wanted:
                outcome.dataset_items += 1
            else:
                outcome.failures.append(f"dataset item for {rows[0].item.id!r}: answered with id {stored.id}")
                outcome.lost.update(_pairs(rows))

        await asyncio.gather(*(upsert(rows) for rows in failing.values()))

    async def _dataset(self, name: str) -> None:
        """Create the dataset when missing (an existing one keeps its description and metadata)."""
        if self._dataset_ready:
            return
        try:
            await self._call(self.sink.client.api.datasets.get, name)
        except ApiError as exc:
            if exc.status_code != 404:
                raise
            await self._call(
                self.sink.client.api.datasets.create,
                name=name,
                description=f"Production items the evalmon monitor {self.run.monitor!r} found failing",
                metadata={"monitor": self.run.monitor, "source_key": self.run.source_key},
            )
        self._dataset_ready = True

    def _dataset_item(self, dataset: str, item_id: str, rows: list[ResultRow]) -> dict[str, Any]:
        item = rows[0].item
        failed = {
            row.metric_name: {
                "score": row.result.score if row.result.score is None or math.isfinite(row.result.score) else None,
                "threshold": row.result.threshold,
                "metric_version": row.metric_version,
                "explanation": (row.result.explanation or "")[:EXPLANATION_CHARS] or None,
            }
            for row in rows
        }
        body: dict[str, Any] = {
            "dataset_name": dataset,
            "id": item_id,
            "input": _input_of(item),
            "metadata": {
                "actual_output": _output_of(item),
                "failed_metrics": failed,
                "evalmon_item_id": item.id,
                "monitor": self.run.monitor,
                "source_key": self.run.source_key,
                "run_id": self.run.run_id,
            },
            "source_trace_id": item.trace_id or (item.id if self.run.config.item_level == "trace" else None),
        }
        if self.run.config.item_level == "observation" and item.observation_id:
            body["source_observation_id"] = item.observation_id
        if item.expected_output is not None:  # omitted, not null: an expected output someone added stays
            body["expected_output"] = item.expected_output
        if body["source_trace_id"] is None:
            del body["source_trace_id"]
        return body

    # -- calls ----------------------------------------------------------------------------------
    async def _pages(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        rows: list[Any] = []
        page = 1
        while True:
            answer = await self._call(fn, *args, page=page, limit=PAGE)
            rows.extend(answer.data)
            if not answer.data or page >= answer.meta.total_pages:
                return rows
            page += 1

    async def _create_once(self, fn: Callable[..., Any], **kwargs: Any) -> None:
        """A create that is not retried blindly: a lost answer may have created it (look again after)."""
        try:
            await self._call(fn, attempts=1, **kwargs)
        except TransientError as exc:
            log.debug("create %s: %s; looking whether it arrived", getattr(fn, "__name__", fn), exc)

    async def _call(self, fn: Callable[..., Any], *args: Any, attempts: int | None = None, **kwargs: Any) -> Any:
        return await call_api(
            fn,
            *args,
            attempts=attempts if attempts is not None else self.sink.max_retries + 1,
            initial_wait=self.sink.retry_initial_s,
            max_wait=self.sink.retry_max_s,
            stats=self.sink.stats,
            **kwargs,
        )


def _flags(row: ResultRow, when: str, condition: tuple[str, float] | None) -> bool:
    """Does this row send its item to review?"""
    if when == "errors":
        return row.status is MetricStatus.ERROR
    if row.status is not MetricStatus.OK:
        return False
    if condition is None:  # failed
        return row.result.passed is False
    score = row.result.score
    return score is not None and math.isfinite(score) and _COMPARE[condition[0]](score, condition[1])


def _pairs(rows: Iterable[ResultRow]) -> set[PairKey]:
    return {(row.item.id, row.metric_name) for row in rows}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        return f"HTTP {exc.status_code}: {str(exc.body)[:200]}"
    return str(exc)[:300]


async def publish_review(sink: LangfuseSink, run: RunContext, results: EvaluationResult, report: SinkReport) -> None:
    """The sink's hook: queue and dataset writes of one chunk; unconfirmed pairs leave `report.stored`."""
    loop = sink.review_loop(run)
    outcome = await loop.publish(results, report)
    lost_stored = outcome.lost & report.stored
    report.stored -= outcome.lost
    report.details["review"] = {
        "queued": outcome.queued,
        "already_queued": outcome.already_queued,
        "over_cap": outcome.over_cap,
        "dataset_items": outcome.dataset_items,
    }
    if outcome.over_cap:
        log.warning("review: %d item(s) over publish.langfuse.review.max_per_run were not queued", outcome.over_cap)
    if outcome.failures:
        reasons = "; ".join(dict.fromkeys(outcome.failures))[:500]
        held = f" ({len(lost_stored)} scored pair(s) held back for the next run)" if lost_stored else ""
        text = f"review: {reasons}{held}"
        report.error = f"{report.error}; {text}" if report.error else text
