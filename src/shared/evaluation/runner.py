"""The runner: every (item, metric) pair, at bounded concurrency, with timeouts and retries.

One failing pair never stops the rest: a failure becomes an error row (architecture.md section 6).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared.errors import MetricError
from shared.evaluation.config import EvaluationConfig
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricResult, MetricStatus
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.retry import async_retrying, first_delay, is_transient


@dataclass(frozen=True)
class PendingItem:
    """An item and the metric names still to run on it (None: all of them)."""

    item: DatasetItem
    metric_names: frozenset[str] | None = None

    def wants(self, metric_name: str) -> bool:
        return self.metric_names is None or metric_name in self.metric_names


ProgressCallback = Callable[[int], None]


async def evaluate(
    items: Sequence[PendingItem | DatasetItem],
    metrics: Sequence[BaseMetric],
    config: EvaluationConfig | None = None,
    *,
    on_progress: ProgressCallback | None = None,
) -> EvaluationResult:
    """Score items with metrics. Returns one row per wanted pair, in item then metric order.

    DATAFLOW: units of work (an item's heuristic metrics together; each LLM metric alone) ->
    semaphore(concurrency) -> required-field check -> timeout(metric.execute), retried only after
    a transient error -> ResultRow (ok | error | skipped | deferred).

    Grouping an item's heuristics in one task keeps asyncio's per-task cost off cheap metrics;
    LLM metrics get a task each so slow judge calls overlap up to `concurrency`.
    """
    config = config or EvaluationConfig()
    pending = [p if isinstance(p, PendingItem) else PendingItem(p) for p in items]
    semaphore = asyncio.Semaphore(config.concurrency)
    versions = {id(m): m.version for m in metrics}  # hashing once per metric, not per row
    order = {id(m): index for index, m in enumerate(metrics)}

    def make_row(item: DatasetItem, metric: BaseMetric, outcome: MetricResult) -> ResultRow:
        return ResultRow(
            item=item,
            metric_name=metric.name,
            metric_key=metric.key,
            metric_version=versions[id(metric)],
            score_type=metric.score_type,
            result=outcome,
            direction=metric.direction,
        )

    async def run_unit(position: int, item: DatasetItem, unit: list[BaseMetric]) -> list[tuple[int, int, ResultRow]]:
        out: list[tuple[int, int, ResultRow]] = []
        async with semaphore:
            try:
                # One timer per unit, not per metric: heuristics are cheap and timers are not.
                heuristic = unit[0].kind == "heuristic"  # LLM units time each attempt in _attempt
                async with asyncio.timeout(config.timeout_s * len(unit) if heuristic else None):
                    for metric in unit:
                        out.append(
                            (position, order[id(metric)], make_row(item, metric, await _score(item, metric, config)))
                        )
            except TimeoutError:
                for metric in unit[len(out) :]:
                    failure = MetricResult.failure(f"timed out after {config.timeout_s:g}s")
                    out.append((position, order[id(metric)], make_row(item, metric, failure)))
        if on_progress is not None:
            on_progress(len(out))
        return out

    units = []
    for position, p in enumerate(pending):
        wanted = [m for m in metrics if p.wants(m.name)]
        local = [m for m in wanted if m.kind == "heuristic"]
        if local:
            units.append(run_unit(position, p.item, local))
        units.extend(run_unit(position, p.item, [m]) for m in wanted if m.kind != "heuristic")
    done = [entry for unit_rows in await asyncio.gather(*units) for entry in unit_rows]
    done.sort(key=lambda entry: (entry[0], entry[1]))
    return EvaluationResult(rows=[row for _, _, row in done])


async def _score(item: DatasetItem, metric: BaseMetric, config: EvaluationConfig) -> MetricResult:
    item = metric.view(item)  # a metric with `field:` reads that text as actual_output
    missing = metric.missing_fields(item)
    if missing:
        return MetricResult.skipped(f"missing required field(s): {', '.join(missing)}")
    started = time.perf_counter()
    try:
        result = await _attempt(item, metric, config)
    except MetricError as exc:
        result = MetricResult.failure(str(exc), signals=exc.signals)
    except TimeoutError:
        result = MetricResult.failure(f"timed out after {config.timeout_s:g}s")
    except Exception as exc:  # one broken pair must not stop the run: it becomes an error row
        result = MetricResult.failure(f"{type(exc).__name__}: {exc}")
    if result.status is MetricStatus.OK and result.threshold is None:
        result.threshold = metric.threshold
    if not result.latency_s:
        result.latency_s = round(time.perf_counter() - started, 6)
    return result


async def _attempt(item: DatasetItem, metric: BaseMetric, config: EvaluationConfig) -> MetricResult:
    """One call under a timeout; only a transient failure pays for the tenacity retry loop.

    The fast path matters: most pairs are cheap heuristics, and building a retrying controller
    per pair would cost more than the metric itself.
    """
    try:
        if metric.kind == "heuristic":  # the unit's shared timeout covers it (see run_unit)
            return await metric.execute(item)
        async with asyncio.timeout(config.timeout_s):
            return await metric.execute(item)
    except Exception as exc:
        if config.retries == 0 or not is_transient(exc):
            raise
        await asyncio.sleep(first_delay(exc))
    async for attempt in async_retrying(config.retries, retry_on=is_transient):
        with attempt:
            async with asyncio.timeout(config.timeout_s):
                return await metric.execute(item)
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover
