"""`OnlineMonitor`: wires the stages of one run together (architecture.md section 2).

The monitor holds no stage logic of its own: each stage is a module that can be tested alone
with plain data. Read `run_async` top to bottom to follow a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.errors import ConfigError, EvalmonError, InvalidRecordError
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricContext, build_metric
from shared.evaluation.results import EvaluationResult, ResultRow, ResultTally
from shared.evaluation.runner import PendingItem, evaluate
from shared.metrics.judge_cost import judge_run_warnings
from shared.monitoring.config import MonitorConfig, config_root
from shared.monitoring.extractors import Extractor, resolve_extractor
from shared.monitoring.guards import ExtractionGuard
from shared.monitoring.ledger.base import NullStore, ScoredItemsStore
from shared.monitoring.ledger.csv_store import CsvScoredItemsStore
from shared.monitoring.loader import LoadedConfig, load_monitor_config
from shared.monitoring.needs import needs_of
from shared.monitoring.progress import Reporter
from shared.monitoring.publishing import build_sinks, configured_sinks, ledger_entries, publish_results
from shared.monitoring.read_ahead import map_ahead, read_ahead
from shared.monitoring.run_context import RunContext, new_run_id
from shared.monitoring.run_totals import PublishTotals
from shared.monitoring.sampling import PREVIEW_FIELDS, Candidate, check_sampling, make_sampler, samples_on_preview
from shared.monitoring.sinks.base import Sink
from shared.monitoring.sinks.local import write_summary
from shared.monitoring.sinks.retention import prune_runs
from shared.monitoring.sources.base import DataSource, InvalidRecord, build_source
from shared.monitoring.summary import Counts, Estimate, MetricEstimate, RunStatus, RunSummary
from shared.monitoring.window import resolve_window
from shared.process import run_sync
from shared.registry import import_dotted
from shared.reporting import ReportCollector, local_baseline, write_run_report
from shared.settings import Settings, load_settings

log = logging.getLogger(__name__)

FILTER_BATCH = 500  # candidates per ledger lookup: one query per batch for the Postgres ledger


class OnlineMonitor:
    """One monitor: a validated config with its source, extractor, metrics and dedup store."""

    def __init__(
        self,
        config: MonitorConfig,
        *,
        config_path: Path | None = None,
        settings: Settings | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        implementation_dir = _implementation_dir(config_path)
        self.settings = settings or load_settings(implementation_dir)
        # relative config paths: an explicit base_dir (notebooks, tests), else the config's repository root
        # (or its folder), never the current directory; a config built in Python without a file: the cwd
        self.base_dir = base_dir or (config_root(config_path) if config_path is not None else Path.cwd())
        self._metric_shared: dict[str, Any] = {}  # the run's MetricContext.shared (judge budget, clients)
        for module in config.plugins:  # implementations register their plug-ins on import
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ConfigError(f"cannot import plugin module '{module}' ({exc})", field="plugins") from None
        self.metrics: list[BaseMetric] = [
            build_metric(spec.key, params=spec.params, threshold=spec.threshold, name=spec.name, field=f"metrics.{i}")
            for i, spec in enumerate(config.metrics)
        ]
        for built in self.metrics:
            built.base_dir = self.base_dir  # their relative prompt and cache files, before setup too
        self.source: DataSource = build_source(
            config.source.type,
            config.source.params(),
            settings=self.settings,
            base_dir=self.base_dir,
            key=config.source.key,
        )
        self.extractor: Extractor = resolve_extractor(
            config.extractor,
            config.extractor_fields,
            type(self.source).default_extractor,
            field_paths=[m.record_path for m in self.metrics if m.record_path],  # metrics' `field:` trace paths
        )
        check_sampling(config.sampling)  # after `plugins:` modules registered theirs
        configured_sinks(config.publish.sinks)  # validated now; each run builds its own

    @classmethod
    def from_yaml(
        cls,
        path: str | Path,
        overrides: Sequence[str] = (),
        *,
        settings: Settings | None = None,
        base_dir: Path | None = None,
    ) -> OnlineMonitor:
        """Load, validate and build; every problem is a ConfigError naming file and field."""
        loaded: LoadedConfig = load_monitor_config(path, overrides)
        try:
            return cls(loaded.config, config_path=loaded.path, settings=settings, base_dir=base_dir)
        except ConfigError as exc:
            raise exc.with_file(str(loaded.path)) from None

    @property
    def name(self) -> str:
        return self.config.monitor

    # ------------------------------------------------------------------------------------
    def run(self, **kwargs: Any) -> RunSummary:
        """Synchronous `run_async`; also works inside a running event loop (Jupyter)."""
        return run_sync(self.run_async(**kwargs))

    async def run_async(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        dry_run: bool = False,
        limit: int | None = None,
        reporter: Reporter | None = None,
        now: datetime | None = None,
        keep_results: bool | None = None,
    ) -> RunSummary:
        """Run the monitor once over its window and return the RunSummary.

        `keep_results`: write the run folder (results, summary.json, reports). Default: a run keeps
        them, a dry run does not (its RunSummary is complete either way).

        DATAFLOW:
          config (YAML + ${ENV} + --set, validated in from_yaml)
          -> metric.setup               judge clients, budget, prompt versions (part of metric versions)
          -> source.fetch_roots(window) light records (ids, start times; what the sampler reads), page by
                                        page, the next page read ahead; a source that cannot split records: fetch
          -> source.preview | extractor item identity of a root | the DatasetItem; invalid ones counted
          -> ledger.filter_unscored     PendingItem(item, metrics still needed); the rest are duplicates
          -> sampler                    streaming, seeded: memory O(sample); `all`/`rate` hand items on at once
          then chunk by chunk (evaluation.chunk_size items; the next chunk hydrates while this one is scored):
          -> source.hydrate + extractor complete records of the chosen items only -> DatasetItem
          -> runner.evaluate            ResultRow per (item, metric): ok | error | skipped | deferred
          -> publish_results            local files, Postgres, Langfuse -> recordable pairs
          -> ledger.record              only pairs every required sink confirmed (not in dry runs)
          -> tallies                    counts, metric summaries, sink totals, report, guards; rows dropped
          A chunk published and recorded stays so when a later chunk fails or the process is killed.
          -> alerts                     rules over this run's metrics -> Slack
          -> guards                     warnings when the extraction looks wrong (empty, status objects, ...)
          -> calibration                with `calibration:`, a warning per judge whose kappa against people is low
          -> RunSummary                 returned; written to <results_dir>/summary.json when anything was scored
                                        (and the run keeps results: not a dry run, unless asked)
          -> report                     report.md + report.html beside it (vs earlier runs); old run folders pruned
        """
        reporter = reporter or Reporter()
        started = time.monotonic()
        run = self._new_run(since, until, dry_run, now)
        run.keep_results = not dry_run if keep_results is None else keep_results
        counts = Counts()
        errors: list[str] = []
        tally = ResultTally()
        published = PublishTotals()
        alert_rows: list[ResultRow] = []  # only rows of metrics with alert rules, without their item's text
        alerts: list[dict[str, Any]] = []
        estimate: Estimate | None = None
        guard = ExtractionGuard(self.metrics)
        report = ReportCollector({m.name: m.direction for m in self.metrics})
        sinks = build_sinks(run)
        ledger = self._make_ledger(run)
        try:
            try:
                await self._preflight(run, sinks)
                await ledger.open(run.run_id)
                async with ledger:
                    await self._setup_metrics(run)  # first: a judge's version includes its resolved prompt version
                    chunks = self._chunks(run, ledger, counts, limit or self.config.limit, reporter)
                    async with contextlib.aclosing(chunks):
                        async for chunk in chunks:
                            guard.add_items(p.item for p in chunk)
                            estimate = _add_estimates(estimate, await self._prepare_metrics(run, chunk))
                            result = await self._evaluate(chunk, reporter)
                            guard.add_results(result)
                            report.add(result)
                            outcome = await publish_results(run, result, sinks)
                            if not dry_run:
                                counts.recorded += await ledger.record(ledger_entries(run, result, outcome.recordable))
                            tally.add(result)
                            published.add(outcome, result)
                            alert_rows.extend(self._rows_for_alerts(result))
            except ConfigError as exc:  # e.g. bad credentials found at preflight
                raise exc.with_file(str(self.config_path)) if self.config_path else exc from None
            except EvalmonError as exc:
                errors.append(str(exc))
                log.error("%s", exc)
            errors.extend(published.errors)
            summary = self._summarise(
                run, counts, tally, published, alerts, estimate, errors, time.monotonic() - started
            )
            summary.warnings.extend(guard.warnings())
            if self.config.calibration is not None:  # one read of human labels, per run
                from shared.monitoring.calibration import calibration_warnings

                summary.warnings.extend(await calibration_warnings(run, self.metrics))
            summary.warnings.extend(
                judge_run_warnings(
                    self._metric_shared,
                    estimated_cost_usd=estimate.cost_usd if estimate else None,
                    limit_usd=self.config.evaluation.max_cost_usd,
                )
            )
            await self._alerts(run, summary, alert_rows, report)
            for warning in summary.warnings:
                log.warning("%s", warning)
            # a run with nothing to score, or a dry run not asked to keep results, leaves no folder behind
            if run.keep_results and (len(tally) or summary.errors):
                write_summary(run.results_dir, summary.model_dump(mode="json"))
                self._write_report(run, summary, report)
            else:
                summary.results_dir = None
            if self.config.publish.local.keep_runs is not None and run.keep_results:
                prune_runs(
                    run.results_dir.parent,
                    self.name,
                    keep=self.config.publish.local.keep_runs,
                    current_run_id=run.run_id,
                )
            await self._finish(run, sinks, summary)
            return summary
        finally:
            await self._close(sinks)

    def _write_report(self, run: RunContext, summary: RunSummary, report: ReportCollector) -> None:
        """report.md and report.html beside summary.json, compared with this monitor's earlier runs."""
        if not run.results_dir.is_dir():  # nothing was written for this run: no report either
            return
        try:
            baseline = local_baseline(run.results_dir.parent, self.name, before_run_id=run.run_id)
            uses_langfuse = self.config.source.type == "langfuse" or self.config.publish.langfuse.enabled
            write_run_report(
                run.results_dir,
                summary.model_dump(mode="json"),
                report,
                baseline=baseline,
                langfuse_url=self.settings.langfuse_base_url if uses_langfuse else None,
            )
        except Exception as exc:  # a report is for reading: never turn a good run red for it
            log.warning("could not write the run report: %s", exc)

    async def _finish(self, run: RunContext, sinks: list[Sink], summary: RunSummary) -> None:
        """Let sinks record the run's final status and counts (the Postgres run row)."""
        for sink in sinks:
            try:
                await sink.finish(run, summary.model_dump(mode="json"))
            except Exception as exc:  # the run row is bookkeeping: never turn a good run red for it
                log.warning("sink %s could not record the run's final status: %s", sink.name, exc)

    # -- stages ------------------------------------------------------------------------
    def _new_run(
        self, since: datetime | None, until: datetime | None, dry_run: bool, now: datetime | None
    ) -> RunContext:
        window_cfg = self.config.window
        window = resolve_window(
            lookback_minutes=window_cfg.lookback_minutes,
            settle_minutes=window_cfg.settle_minutes,
            since=since or window_cfg.since,
            until=until or window_cfg.until,
            now=now,
        )
        return RunContext(
            run_id=new_run_id(self.name),
            monitor=self.name,
            config=self.config,
            config_hash=self.config.config_hash(),
            source_key=self.source.source_key,
            window=window,
            settings=self.settings,
            base_dir=self.base_dir,
            dry_run=dry_run,
        )

    def _make_ledger(self, run: RunContext) -> ScoredItemsStore:
        dedup = self.config.dedup
        if dedup.store == "none":
            return NullStore(self.name, run.source_key)
        if dedup.store == "postgres":
            store_cls = import_dotted("shared.database.ledger:PostgresScoredItemsStore")
            return store_cls(self.name, run.source_key, settings=self.settings, claim_ttl_s=dedup.claim_ttl_s)
        path = Path(dedup.path)
        return CsvScoredItemsStore(
            self.name,
            run.source_key,
            path=path if path.is_absolute() else self.base_dir / path,
            lock_timeout_s=dedup.lock_timeout_s,
        )

    async def _preflight(self, run: RunContext, sinks: list[Sink]) -> None:
        """Credentials, reachability and schema, before any work is done."""
        await self.source.check()
        for sink in sinks:
            await sink.check(run)

    def _reads_in_parts(self) -> bool:
        """Sample on root records, hydrate only the chosen ones? Only when the source can split a
        record, the extractor declares its needs and keeps the source's ids, and the sampler reads
        nothing a root lacks."""
        if not self.source.reads_in_parts or not samples_on_preview(self.config.sampling):
            return False
        needs = needs_of(self.extractor)
        return needs is not None and needs.keeps_source_ids

    async def _chunks(
        self, run: RunContext, ledger: ScoredItemsStore, counts: Counts, limit: int | None, reporter: Reporter
    ) -> AsyncGenerator[list[PendingItem], None]:
        """Chunks of items to score: chosen on roots, then hydrated and extracted, each chunk
        prepared while the one before it is scored."""
        in_parts = self._reads_in_parts()
        streaming = self.config.sampling.strategy in ("all", "rate")
        self.source.plan_reads(
            needs_of(self.extractor), light_roots=in_parts and not streaming, preview_fields=self._sampled_fields()
        )
        chosen = read_ahead(self._candidates(run, ledger, counts, limit, reporter, in_parts), depth=1)
        complete = map_ahead(chosen, lambda chunk: self._complete(chunk, ledger, counts), ahead=1)
        async with contextlib.aclosing(complete):
            async for chunk in complete:
                if chunk:
                    yield chunk

    def _sampled_fields(self) -> frozenset[str]:
        """The item fields the sampler reads on a preview (a light root carries only those)."""
        sampling = self.config.sampling
        if sampling.strategy == "stratified":
            return frozenset({sampling.field or ""})
        if sampling.strategy in ("all", "random", "most_recent", "oldest", "rate"):
            return frozenset({"id", "source_timestamp"})
        return PREVIEW_FIELDS  # a plug-in sampler may read any of them

    async def _candidates(
        self,
        run: RunContext,
        ledger: ScoredItemsStore,
        counts: Counts,
        limit: int | None,
        reporter: Reporter,
        in_parts: bool,
    ) -> AsyncGenerator[list[Candidate], None]:
        """fetch_roots -> preview (or fetch -> extract) -> dedup -> sample, in chunks of chunk_size.

        Streaming samplers (`all`, `rate`) hand their choices on as they go, so memory stays flat
        in the window; the others choose at the end, so memory is O(sample).
        """
        size = self.config.evaluation.chunk_size
        sampler = make_sampler(self.config.sampling)
        versions = {m.name: m.version for m in self.metrics}
        seen: set[str] = set()
        batch: list[DatasetItem] = []
        records: dict[str, Any] = {}  # the batch's root records, by item id (hydrated once chosen)
        offered: list[str] = []  # ids handed to the sampler: the unsampled ones are released below
        picked: set[str] = set()
        ready: list[Candidate] = []
        over_limit: list[DatasetItem] = []
        taken = 0
        fetching = True  # the fetch stage owns the reporter until the first chunk is handed on

        async def flush() -> None:
            nonlocal taken
            held_elsewhere = ledger.claimed_elsewhere
            pending = await ledger.filter_unscored(batch, versions)
            held_elsewhere = ledger.claimed_elsewhere - held_elsewhere
            counts.claimed_elsewhere += held_elsewhere
            counts.duplicates += len(batch) - len(pending) - held_elsewhere
            if limit is not None and taken + len(pending) > limit:
                over_limit.extend(p.item for p in pending[limit - taken :])
                pending = pending[: limit - taken]
                counts.more_available = True
            for p in pending:
                sampler.offer(Candidate(p, records.get(p.item.id)))
                offered.append(p.item.id)
            taken += len(pending)
            batch.clear()
            records.clear()
            ready.extend(sampler.take_ready())

        def hand_on(chunk: list[Candidate]) -> list[Candidate]:
            nonlocal fetching
            if fetching:
                reporter.done()
                fetching = False
            picked.update(c.item.id for c in chunk)
            counts.sampled += len(chunk)
            return chunk

        reporter.stage("fetching")
        source = self.source.fetch_roots(run.window) if in_parts else self.source.fetch(run.window)
        try:
            async for record in source:
                if limit is not None and taken >= limit:
                    counts.more_available = True
                    break
                counts.fetched += 1
                if fetching:
                    reporter.advance()
                item = self._preview(record, counts) if in_parts else self._extract(record, counts)
                if item is None:
                    continue
                if item.id in seen:
                    counts.duplicates += 1
                    continue
                seen.add(item.id)
                batch.append(item)
                if in_parts:
                    records[item.id] = record
                if len(batch) >= FILTER_BATCH:
                    await flush()
                while len(ready) >= size:
                    yield hand_on(ready[:size])
                    del ready[:size]
            if batch:
                await flush()
        finally:
            await source.aclose()  # type: ignore[attr-defined]
            if fetching:
                reporter.done()
        counts.more_available = counts.more_available or self.source.stats.more_available
        ready.extend(sampler.result())
        # Postgres claims: give back what this run will not score, so other workers can take it.
        chosen_ids = picked | {c.item.id for c in ready}
        await ledger.release(over_limit + [DatasetItem(id=i) for i in offered if i not in chosen_ids])
        log.info(
            "fetched %d, invalid %d, already scored %d, claimed by another worker %d, new %d, sampled %d",
            counts.fetched,
            counts.invalid,
            counts.duplicates,
            counts.claimed_elsewhere,
            taken,
            counts.sampled + len(ready),
        )
        for start in range(0, len(ready), size):
            yield hand_on(ready[start : start + size])

    def _preview(self, record: Any, counts: Counts) -> DatasetItem | None:
        """A root record's identity (id, timestamp, trace name, tags), or None (counted as invalid)."""
        if isinstance(record, InvalidRecord):
            return self._extract(record, counts)
        item = self.source.preview(record, self.config.item_level)
        if item is None:
            counts.invalid += 1
            log.debug("invalid record: the source found no item id in it")
        return item

    async def _complete(self, chunk: list[Candidate], ledger: ScoredItemsStore, counts: Counts) -> list[PendingItem]:
        """Hydrate the chunk's root records (one bulk read) and extract their items.

        An item whose extraction fails, or whose id is not the one it was chosen by, is invalid
        (counted) and its claim given back.
        """
        if all(c.record is None for c in chunk):
            return [c.pending for c in chunk]
        records = await self.source.hydrate([c.record for c in chunk])
        complete: list[PendingItem] = []
        dropped: list[DatasetItem] = []
        for candidate, record in zip(chunk, records, strict=True):
            item = self._extract(record, counts)
            if item is not None and item.id != candidate.item.id:
                counts.invalid += 1
                log.debug("invalid record: extracted id %r, chosen as %r", item.id, candidate.item.id)
                item = None
            if item is None:
                dropped.append(candidate.item)
                continue
            complete.append(PendingItem(item, candidate.pending.metric_names))
        if dropped:
            await ledger.release(dropped)
        return complete

    def _extract(self, record: Any, counts: Counts) -> DatasetItem | None:
        """record -> DatasetItem, or None (counted as invalid) for anything that cannot be scored."""
        if isinstance(record, InvalidRecord):
            counts.invalid += 1
            log.debug("invalid record %s: %s", record.ref, record.reason)
            return None
        try:
            item = self.extractor(record)
            if self.config.item_level == "observation":
                if not item.observation_id:
                    raise InvalidRecordError("observation-level monitor: the extractor set no observation_id")
                item = item.model_copy(update={"id": item.observation_id})
            return item
        except Exception as exc:  # a malformed record must never stop the run (architecture.md section 6)
            counts.invalid += 1
            log.debug("invalid record: %s", exc)
            return None

    async def _setup_metrics(self, run: RunContext) -> None:
        """Give metrics their run context (budget, clients, prompts) before the ledger reads their versions."""
        context = MetricContext(
            settings=self.settings, base_dir=self.base_dir, evaluation=self.config.evaluation, dry_run=run.dry_run
        )
        self._metric_shared = context.shared
        for m in self.metrics:
            await m.setup(context)

    async def _prepare_metrics(self, run: RunContext, candidates: list[PendingItem]) -> Estimate | None:
        """Total the judge calls to come in this chunk, per metric (metrics are set up already)."""
        by_metric: dict[str, MetricEstimate] = {}
        for m in self.metrics:
            estimate = m.estimate([p.item for p in candidates if p.wants(m.name)])
            if estimate.calls:
                by_metric[m.name] = MetricEstimate(judge_calls=estimate.calls, cost_usd=round(estimate.cost_usd, 6))
        if not by_metric:
            return None
        calls = sum(e.judge_calls for e in by_metric.values())
        cost = sum(e.cost_usd for e in by_metric.values())
        detail = ", ".join(f"{name} {e.judge_calls} (${e.cost_usd:.4f})" for name, e in by_metric.items())
        log.warning("judge calls planned: %d, estimated cost $%.4f: %s", calls, cost, detail)
        return Estimate(judge_calls=calls, cost_usd=round(cost, 6), by_metric=by_metric)

    async def _evaluate(self, candidates: list[PendingItem], reporter: Reporter) -> EvaluationResult:
        total = sum(1 for p in candidates for m in self.metrics if p.wants(m.name))
        reporter.stage("scoring", total=total)
        try:
            return await evaluate(candidates, self.metrics, self.config.evaluation, on_progress=reporter.advance)
        finally:
            reporter.done()

    def _rows_for_alerts(self, result: EvaluationResult) -> list[ResultRow]:
        """The rows alert rules may cite (their metrics only), without the items' text."""
        wanted = {rule.metric for rule in self.config.alerts.rules}
        if not wanted:
            return []
        slim: dict[str, DatasetItem] = {}
        rows = []
        for row in result:
            if row.metric_name in wanted:
                item = slim.get(row.item.id)
                if item is None:
                    item = slim[row.item.id] = row.item.model_copy(update=_NO_TEXT)
                rows.append(dataclasses.replace(row, item=item))
        return rows

    async def _alerts(
        self, run: RunContext, summary: RunSummary, rows: list[ResultRow], report: ReportCollector
    ) -> None:
        """Alert rules -> incidents -> Slack (shared.monitoring.notify): fills `summary.alerts`; an
        alert that could not be delivered is a run error (exit 1). Also posts the Slack run report."""
        if not self.config.alerts.rules and self.config.publish.slack is None:
            return
        notify = importlib.import_module("shared.monitoring.notify")
        versions = {m.name: m.version for m in self.metrics}
        await notify.alert_and_report(
            run, summary, rows=rows, versions=versions, settings=self.settings, collector=report
        )

    async def _close(self, sinks: list[Sink]) -> None:
        closables: list[Any] = [*sinks, *self.metrics, self.source]
        for closable in closables:
            try:
                await closable.aclose()
            except Exception as exc:
                log.debug("closing %r: %s", closable, exc)

    def _summarise(
        self,
        run: RunContext,
        counts: Counts,
        tally: ResultTally,
        published: PublishTotals,
        alerts: list[dict[str, Any]],
        estimate: Estimate | None,
        errors: list[str],
        duration_s: float,
    ) -> RunSummary:
        from shared.evaluation.metric import MetricStatus

        counts.evaluated = tally.items_evaluated
        counts.metric_errors = tally.count(MetricStatus.ERROR)
        counts.skipped = tally.count(MetricStatus.SKIPPED)
        counts.deferred = tally.count(MetricStatus.DEFERRED)
        counts.repaired_text = published.repaired_text
        for sink_name in ("postgres", "langfuse"):
            n = published.published(sink_name)
            if n is not None:
                setattr(counts, f"published_{sink_name}", n)
        attempted = len(tally) - counts.skipped - counts.deferred
        error_rate = counts.metric_errors / attempted if attempted else 0.0
        if error_rate > self.config.evaluation.max_error_rate:
            errors.append(
                f"metric error rate {error_rate:.0%} is above evaluation.max_error_rate "
                f"{self.config.evaluation.max_error_rate:.0%} ({counts.metric_errors} of {attempted})"
            )
        sink_failed = published.sink_failed
        status: RunStatus
        if errors and (not sink_failed or not published.recordable or len(errors) > len(published.errors)):
            status = "failed"
        elif sink_failed:
            status = "partial"
        else:
            status = "dry_run" if run.dry_run else "ok"
        return RunSummary(
            run_id=run.run_id,
            monitor=run.monitor,
            status=status,
            window={
                **run.window.as_dict(),
                "applied": run.window.explicit or type(self.source).filters_by_default_window,
            },
            counts=counts,
            metrics=tally.summary(),
            alerts=alerts,
            cost_usd=round(tally.cost_usd, 6),
            estimate=estimate,
            duration_s=round(duration_s, 3),
            results_dir=str(run.results_dir),
            errors=errors,
            warnings=_claimed_elsewhere_warning(counts),
        )


def _claimed_elsewhere_warning(counts: Counts) -> list[str]:
    """Skipped work is not done work: say so, although the status stays ok."""
    if not counts.claimed_elsewhere:
        return []
    return [
        f"{counts.claimed_elsewhere} item(s) skipped: claimed by another running worker "
        "(it scores them; if it dies, the next run does)"
    ]


# What `_rows_for_alerts` blanks: an alert cites ids and scores, never the text.
_NO_TEXT: dict[str, Any] = {
    "query": None,
    "actual_output": None,
    "expected_output": None,
    "retrieved_content": None,
    "conversation": None,
    "tools_called": None,
    "additional_input": {},
    "additional_output": {},
}


def _add_estimates(total: Estimate | None, chunk: Estimate | None) -> Estimate | None:
    if chunk is None:
        return total
    if total is None:
        return chunk
    by_metric = dict(total.by_metric)
    for name, e in chunk.by_metric.items():
        before = by_metric.get(name, MetricEstimate())
        by_metric[name] = MetricEstimate(
            judge_calls=before.judge_calls + e.judge_calls, cost_usd=round(before.cost_usd + e.cost_usd, 6)
        )
    return Estimate(
        judge_calls=total.judge_calls + chunk.judge_calls,
        cost_usd=round(total.cost_usd + chunk.cost_usd, 6),
        by_metric=by_metric,
    )


def _implementation_dir(config_path: Path | None) -> Path | None:
    if config_path is None:
        return None
    parent = config_path.resolve().parent
    return parent.parent if parent.name == "config" else None
