"""`publish_results`: the one place results leave a run (local files, Postgres, Langfuse).

It also decides what the ledger may record: a pair (item, metric) is recordable when the metric
scored it (or found it not applicable) and every required sink confirmed it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.evaluation.metric import MetricStatus
from shared.evaluation.results import EvaluationResult
from shared.monitoring.ledger.base import LedgerEntry
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import PairKey, Sink, SinkReport
from shared.monitoring.sinks.local import LocalSink
from shared.registry import import_dotted

log = logging.getLogger(__name__)

RECORDABLE = (MetricStatus.OK, MetricStatus.SKIPPED)


@dataclass
class PublishOutcome:
    reports: list[SinkReport] = field(default_factory=list)
    recordable: list[PairKey] = field(default_factory=list)

    def report(self, sink: str) -> SinkReport | None:
        return next((r for r in self.reports if r.sink == sink), None)

    @property
    def errors(self) -> list[str]:
        return [f"{r.sink}: {r.error}" for r in self.reports if r.error]


def build_sinks(run: RunContext) -> list[Sink]:
    """Local always; Postgres and Langfuse when enabled and not a dry run."""
    sinks: list[Sink] = [LocalSink()]
    if run.dry_run:
        return sinks
    publish = run.config.publish
    if publish.postgres.enabled:
        sinks.append(import_dotted("shared.database.sink:PostgresSink")(run.settings))
    if publish.langfuse.enabled:
        sinks.append(import_dotted("shared.langfuse.sink:LangfuseSink")(run.settings, publish.langfuse))
    return sinks


async def publish_results(run: RunContext, results: EvaluationResult, sinks: list[Sink]) -> PublishOutcome:
    """DATAFLOW: results -> each sink in turn (local first) -> reports -> recordable pairs.

    Sinks never see each other's failures; a failed sink only removes its unconfirmed pairs from
    what the ledger may record, so the next run redoes them and the redo overwrites.
    """
    outcome = PublishOutcome()
    for sink in sinks:
        try:
            report = await sink.publish(run, results)
        except Exception as exc:  # a sink bug must not lose the other sinks' work or pass silently
            log.exception("sink %s failed", sink.name)
            report = SinkReport(sink.name, error=f"{type(exc).__name__}: {exc}")
        if report.error:
            log.error("sink %s: %s", sink.name, report.error)
        outcome.reports.append(report)
    required = [r for r in outcome.reports if any(s.name == r.sink and s.required for s in sinks)]
    partial = [r for r in required if not r.ok]  # usually none: then every recordable pair qualifies
    for row in results:
        if row.result.status not in RECORDABLE:
            continue
        key = (row.item.id, row.metric_name)
        if not partial or all(key in r.stored for r in partial):
            outcome.recordable.append(key)
    return outcome


def ledger_entries(run: RunContext, results: EvaluationResult, recordable: list[PairKey]) -> list[LedgerEntry]:
    allowed = set(recordable)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return [
        LedgerEntry(
            monitor=run.monitor,
            source_key=run.source_key,
            item_id=row.item.id,
            metric_name=row.metric_name,
            metric_version=row.metric_version,
            run_id=run.run_id,
            recorded_at=now,
        )
        for row in results
        if (row.item.id, row.metric_name) in allowed
    ]
