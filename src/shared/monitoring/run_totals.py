"""`PublishTotals`: what the sinks did over a run, added up chunk by chunk.

A run publishes and records chunk after chunk; the summary reports the run. Each sink's
published count is summed, its errors are kept once per distinct message (with how many chunks
failed), and the rows themselves are never kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.evaluation.metric import MetricStatus
from shared.evaluation.results import EvaluationResult
from shared.monitoring.publishing import PublishOutcome

MAX_MESSAGES = 3  # distinct error messages kept per sink


@dataclass
class SinkTotal:
    published: int = 0
    chunks: int = 0
    failed_chunks: int = 0
    messages: list[str] = field(default_factory=list)


@dataclass
class PublishTotals:
    sinks: dict[str, SinkTotal] = field(default_factory=dict)
    recordable: int = 0
    repaired_text: int = 0

    def add(self, outcome: PublishOutcome, result: EvaluationResult) -> None:
        self.recordable += len(outcome.recordable)
        self.repaired_text += getattr(outcome, "repaired_text", 0)
        for report in outcome.reports:
            total = self.sinks.setdefault(report.sink, SinkTotal())
            total.chunks += 1
            total.published += len(report.stored) if report.error or report.stored else publishable(result, report.sink)
            if report.error:
                total.failed_chunks += 1
                if report.error not in total.messages and len(total.messages) < MAX_MESSAGES:
                    total.messages.append(report.error)

    def published(self, sink: str) -> int | None:
        total = self.sinks.get(sink)
        return total.published if total is not None else None

    @property
    def sink_failed(self) -> bool:
        return any(t.failed_chunks for t in self.sinks.values())

    @property
    def errors(self) -> list[str]:
        """One line per failing sink (as `PublishOutcome.errors` says it for one chunk)."""
        lines = []
        for sink, total in self.sinks.items():
            if not total.failed_chunks:
                continue
            text = "; ".join(total.messages)
            if total.chunks > 1:
                text += f" (in {total.failed_chunks} of {total.chunks} chunks)"
            lines.append(f"{sink}: {text}")
        return lines


def publishable(result: EvaluationResult, sink_name: str) -> int:
    """Rows a successful sink stored: Postgres stores every row, Langfuse only scored ones."""
    if sink_name == "postgres":
        return len(result)
    return result.count(MetricStatus.OK)
