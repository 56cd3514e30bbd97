"""The Langfuse sink: one score per (item, metric), idempotent, and confirmed before it counts.

DATAFLOW:
  result rows (status ok only) -> score body with a deterministic id (uuid5 of monitor,
  source_key, item id, metric name; architecture.md section 3) -> POST /api/public/scores in JSON-list
  batches through the SDK's API client (`api.scores.create`), with retries on 429/5xx/timeouts
  -> confirmation -> SinkReport.stored = confirmed pairs only.

Why not `Langfuse.create_score` + `flush()`: the SDK's score queue retries a failed batch three
times and then drops it without raising. Here every batch is sent explicitly:
  - 202: every score of the batch was accepted;
  - 207: some were rejected (the body has counts, not ids), so the batch's ids are read back
    through `GET /api/public/v3/scores?id=...` and only those found count;
  - anything else after the retries: the batch's pairs are missing.
With `read_back=True` every batch is confirmed by reading back (stricter; on Langfuse Cloud
scores become readable after a short ingestion delay, polled for up to `read_back_timeout_s`).

Rerunning publishes the same ids with the same timestamp (the item's own timestamp when it has
one), which Langfuse treats as an update of the same score: never a duplicate.

With `review` or `regression_dataset` configured, the confirmed chunk then goes through the review
loop (shared.langfuse.review): flagged items into an annotation queue, failing items into a dataset.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langfuse import Langfuse
from langfuse.api.core import ApiError
from langfuse.api.scores.types import CreateScoreBatchResults

from shared.errors import TransientError
from shared.evaluation.metric import MetricStatus
from shared.evaluation.results import EvaluationResult
from shared.langfuse.client import CallStats, call_api, check_connection, make_client
from shared.langfuse.experiment import experiment_publisher, publish_experiment
from shared.langfuse.review import ReviewLoop, publish_review
from shared.langfuse.score_body import PreparedScore, build_score, target_of
from shared.monitoring.config import LangfusePublishConfig
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import Sink, SinkReport, register_sink
from shared.settings import Settings

READ_BACK_PAGE = 100  # GET /api/public/v3/scores accepts at most 100 per page


@dataclass
class PublishOutcome:
    confirmed: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    batches: int = 0
    partial_batches: int = 0


@register_sink("langfuse")
class LangfuseSink(Sink):
    """Publishes scores to Langfuse and reports exactly the pairs Langfuse confirmed."""

    name = "langfuse"

    def __init__(
        self,
        settings: Settings,
        config: LangfusePublishConfig,
        *,
        client: Langfuse | None = None,
        batch_size: int = 100,
        concurrency: int = 4,
        max_retries: int = 6,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        read_back: bool = False,
        read_back_timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.config = config
        self._client = client
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.read_back = read_back
        self.read_back_timeout_s = read_back_timeout_s
        self.stats = CallStats()
        self._review_loop: ReviewLoop | None = None

    @property
    def client(self) -> Langfuse:
        if self._client is None:
            self._client = make_client(self.settings)
        return self._client

    async def check(self, run: RunContext) -> None:
        await asyncio.to_thread(
            check_connection,
            self.client,
            attempts=self.max_retries + 1,
            initial_wait=self.retry_initial_s,
            max_wait=self.retry_max_s,
        )

    async def publish(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        report = await self._publish_scores(run, results)
        if self.config.review is not None or self.config.regression_dataset is not None:
            await publish_review(self, run, results, report)
        return report

    def review_loop(self, run: RunContext) -> ReviewLoop:
        """One review loop per run: it counts the run's queued items and lists the queue once."""
        if self._review_loop is None or self._review_loop.run.run_id != run.run_id:
            self._review_loop = ReviewLoop(self, run)
        return self._review_loop

    async def _publish_scores(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        report = SinkReport(sink=self.name)
        prepared: list[PreparedScore] = []
        unpublishable = 0  # ok rows without a value (e.g. no label): nothing to store
        unattached: list[str] = []  # ok rows without a trace/observation id: a sink failure
        for row in results:
            if row.status is not MetricStatus.OK:
                continue
            if not target_of(run, row):
                unattached.append(row.item.id)
                continue
            score = build_score(run, row, self.config.environment)
            if score is None:
                unpublishable += 1
                continue
            prepared.append(score)
        if unattached:
            level = run.config.item_level
            report.error = (
                f"{len(unattached)} scored row(s) have no {level} id to attach a score to "
                f"(first: item {unattached[0]!r}); check the extractor's trace_id/observation_id"
            )
        if not prepared:
            report.details.update(published=0, unpublishable=unpublishable)
            return report
        if self.config.experiment:  # experiment mode (shared.langfuse.experiment): name the run in metadata
            prepared = experiment_publisher(self, run).annotate(prepared)
        outcome = await self.send(prepared)
        report.stored = {p.pair for p in prepared if p.id in outcome.confirmed}
        missing = len(prepared) - len(report.stored)
        report.details.update(
            published=len(report.stored),
            missing=missing,
            unpublishable=unpublishable,
            batches=outcome.batches,
            partial_batches=outcome.partial_batches,
            requests=self.stats.requests,
            retries=self.stats.retries,
        )
        if missing:
            reasons = "; ".join(dict.fromkeys(outcome.failures)) or "not confirmed"
            text = f"{missing} of {len(prepared)} score(s) not confirmed by Langfuse: {reasons[:500]}"
            report.error = f"{report.error}; {text}" if report.error else text
        if self.config.experiment and report.stored:
            await publish_experiment(self, run, results, prepared, report)
        return report

    async def send(self, scores: Sequence[PreparedScore]) -> PublishOutcome:
        """Send in batches at bounded concurrency; return the ids Langfuse confirmed."""
        outcome = PublishOutcome()
        semaphore = asyncio.Semaphore(self.concurrency)
        batches = [scores[i : i + self.batch_size] for i in range(0, len(scores), self.batch_size)]

        async def one(batch: Sequence[PreparedScore]) -> None:
            async with semaphore:
                await self._send_batch(batch, outcome)

        await asyncio.gather(*(one(b) for b in batches))
        return outcome

    async def _send_batch(self, batch: Sequence[PreparedScore], outcome: PublishOutcome) -> None:
        outcome.batches += 1
        ids = [p.id for p in batch]
        try:
            response = await call_api(
                self.client.api.scores.create,
                request=[p.body for p in batch],
                attempts=self.max_retries + 1,
                initial_wait=self.retry_initial_s,
                max_wait=self.retry_max_s,
                stats=self.stats,
            )
        except TransientError as exc:
            outcome.failures.append(f"POST /api/public/scores failed after {self.max_retries} retries ({exc})")
            return
        except ApiError as exc:
            outcome.failures.append(f"POST /api/public/scores answered HTTP {exc.status_code}: {_short(exc.body)}")
            return
        except (TypeError, ValueError) as exc:  # a body the SDK cannot encode: this batch fails, not the run
            outcome.failures.append(f"POST /api/public/scores not sent: {type(exc).__name__}: {_short(exc)}")
            return
        if isinstance(response, CreateScoreBatchResults):
            outcome.partial_batches += 1
            outcome.failures.extend(e.message for e in response.errors[:5])
            outcome.confirmed.update(await self._read_back(ids, outcome, wait=False))
            return
        if self.read_back:
            outcome.confirmed.update(await self._read_back(ids, outcome, wait=True))
        else:
            outcome.confirmed.update(ids)

    async def _read_back(self, ids: Iterable[str], outcome: PublishOutcome, *, wait: bool) -> set[str]:
        """The ids among `ids` that GET /api/public/v3/scores returns (polled when `wait`)."""
        pending = set(ids)
        found: set[str] = set()
        deadline = time.monotonic() + (self.read_back_timeout_s if wait else 0)
        delay = 0.2
        while pending:
            for chunk in _chunks(sorted(pending), READ_BACK_PAGE):
                try:
                    page = await call_api(
                        self.client.api.scores.get_many,
                        id=",".join(chunk),
                        limit=READ_BACK_PAGE,
                        attempts=self.max_retries + 1,
                        initial_wait=self.retry_initial_s,
                        max_wait=self.retry_max_s,
                        stats=self.stats,
                    )
                except (TransientError, ApiError) as exc:
                    outcome.failures.append(f"reading scores back failed ({exc})")
                    return found
                hits = {s.id for s in page.data} & pending
                found |= hits
                pending -= hits
            if not pending or time.monotonic() >= deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        if pending:
            outcome.failures.append(f"{len(pending)} score(s) not found when read back")
        return found

    async def aclose(self) -> None:
        self._client = None


def _chunks(values: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def _short(body: Any) -> str:
    text = str(body)
    return text if len(text) <= 200 else text[:200] + "..."
