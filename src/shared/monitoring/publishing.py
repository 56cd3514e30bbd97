"""`publish_results`: the one place results leave a run (local files, Postgres, Langfuse, plug-in sinks).

It also decides what the ledger may record: a pair (item, metric) is recordable when the metric
scored it (or found it not applicable) and every required sink confirmed it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.errors import ConfigError
from shared.evaluation.metric import MetricStatus
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.monitoring.config import SinkSpec
from shared.monitoring.ledger.base import LedgerEntry
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import BUILTIN_SINKS, PairKey, Sink, SinkReport, sink_registry
from shared.monitoring.sinks.encoding import encodable_results
from shared.monitoring.sinks.local import LocalSink
from shared.registry import validate_params

log = logging.getLogger(__name__)

RECORDABLE = (MetricStatus.OK, MetricStatus.SKIPPED)


@dataclass
class PublishOutcome:
    reports: list[SinkReport] = field(default_factory=list)
    recordable: list[PairKey] = field(default_factory=list)
    repaired_text: int = 0  # text values made storable at the boundary (lone surrogates, NUL)

    def report(self, sink: str) -> SinkReport | None:
        return next((r for r in self.reports if r.sink == sink), None)

    @property
    def errors(self) -> list[str]:
        return [f"{r.sink}: {r.error}" for r in self.reports if r.error]


def build_sinks(run: RunContext) -> list[Sink]:
    """Local files unless the run keeps no results (a dry run without --keep-results); Postgres,
    Langfuse and the `publish.sinks` entries when enabled and not a dry run.

    Every sink comes from the sink registry; the built-ins keep their own config sections.
    """
    sinks: list[Sink] = [LocalSink()] if run.keep_results else []
    if run.dry_run:
        return sinks
    publish = run.config.publish
    if publish.postgres.enabled:
        postgres: Any = sink_registry.resolve("postgres")  # built-ins take their own sections, not Params
        sinks.append(postgres(run.settings))
    if publish.langfuse.enabled:
        langfuse: Any = sink_registry.resolve("langfuse")
        sinks.append(langfuse(run.settings, publish.langfuse))
    sinks.extend(configured_sinks(publish.sinks))
    return sinks


def configured_sinks(specs: Sequence[SinkSpec]) -> list[Sink]:
    """The `publish.sinks` entries, each built as `cls(params)` from its sink's Params model.

    Called when the monitor is built (to fail before any work) and again for each run; a sink's
    constructor does no I/O (connections belong in `check`). Errors name the entry: `publish.sinks.0.path`.
    """
    sinks: list[Sink] = []
    names = set(BUILTIN_SINKS)
    for i, spec in enumerate(specs):
        where = f"publish.sinks.{i}"
        if spec.type in BUILTIN_SINKS:
            raise ConfigError(
                f"'{spec.type}' is a built-in sink: configure it under publish.{spec.type}", field=f"{where}.type"
            )
        cls = sink_registry.resolve(spec.type, field=f"{where}.type")
        if not (isinstance(cls, type) and issubclass(cls, Sink)):
            raise ConfigError(f"'{spec.type}' is not a Sink class", field=f"{where}.type")
        name = spec.name or spec.type
        if name in names:
            raise ConfigError(f"two sinks are named '{name}'; give this one a 'name'", field=f"{where}.name")
        names.add(name)
        sink = cls(validate_params(cls.Params, spec.params(), field=where, also_valid=SinkSpec.model_fields))
        sink.name = name
        sink.required = spec.required
        sinks.append(sink)
    return sinks


async def publish_results(run: RunContext, results: EvaluationResult, sinks: list[Sink]) -> PublishOutcome:
    """DATAFLOW: results -> text made storable (encoding.py, counted) -> each sink in turn (local
    first; a sink refusing some rows gets parts until those rows fail alone) -> reports -> recordable pairs.

    Sinks never see each other's failures; a failed sink only removes its unconfirmed pairs from
    what the ledger may record, so the next run redoes them and the redo overwrites.
    """
    outcome = PublishOutcome()
    storable, outcome.repaired_text = encodable_results(results)
    if outcome.repaired_text:
        log.warning(
            "repaired %d text value(s) no sink could store (lone surrogates, NUL -> U+FFFD)", outcome.repaired_text
        )
    for sink in sinks:
        report = await _publish_to(sink, run, storable)
        if report.row_error and len(storable) > 1:
            report = await _isolate_rejected_rows(sink, run, storable)
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


async def _publish_to(sink: Sink, run: RunContext, results: EvaluationResult) -> SinkReport:
    try:
        return await sink.publish(run, results)
    except Exception as exc:  # a sink bug must not lose the other sinks' work or pass silently
        log.exception("sink %s failed", sink.name)
        return SinkReport(sink.name, error=f"{type(exc).__name__}: {exc}")


MAX_REJECTED_ROWS = 20  # beyond this many, the data is not the odd bad row: stop splitting


async def _isolate_rejected_rows(sink: Sink, run: RunContext, results: EvaluationResult) -> SinkReport:
    """A sink refused the run because of some rows: publish halves, recursively, until the refused
    parts are single rows. Those rows fail (their pairs stay unrecorded); every other part is stored.

    About 2 * log2(rows) publishes per rejected row; stops early when the sink fails for another
    reason (keeping what was stored) or more than MAX_REJECTED_ROWS rows are refused.
    """
    stored: set[PairKey] = set()
    rejected: list[tuple[PairKey, str]] = []
    parts = _halves(results.rows)
    stopped: str | None = None
    while parts and stopped is None:
        part = parts.pop()
        report = await _publish_to(sink, run, EvaluationResult(part))
        if report.ok:
            stored |= report.stored
        elif not report.row_error:
            stopped = report.error
        elif len(part) > 1:
            parts.extend(_halves(part))
        else:
            rejected.append(((part[0].item.id, part[0].metric_name), report.error or "rejected"))
            if len(rejected) > MAX_REJECTED_ROWS:
                stopped = f"more than {MAX_REJECTED_ROWS} rows refused, stopped looking ({report.error})"
    error = stopped
    if rejected and stopped is None:
        order = {(row.item.id, row.metric_name): i for i, row in enumerate(results.rows)}
        (item_id, metric), reason = min(rejected, key=lambda pair_reason: order[pair_reason[0]])
        error = f"{len(rejected)} row(s) refused (first: item {item_id!r}, metric {metric!r}: {reason})"
    return SinkReport(sink.name, stored=stored, error=error, details={"rejected_rows": len(rejected)})


def _halves(rows: list[ResultRow]) -> list[list[ResultRow]]:
    middle = len(rows) // 2
    return [part for part in (rows[:middle], rows[middle:]) if part]


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
