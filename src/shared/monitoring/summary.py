"""RunSummary: the contract of architecture.md section 7 (`--json` prints exactly this object)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.evaluation.results import MetricSummary

RunStatus = Literal["ok", "partial", "failed", "dry_run"]


class Counts(BaseModel):
    fetched: int = 0
    invalid: int = 0
    duplicates: int = 0  # already scored at the metrics' current versions
    claimed_elsewhere: int = 0  # held by another live worker (dedup.store: postgres): not scored by this run
    sampled: int = 0
    evaluated: int = 0
    metric_errors: int = 0
    skipped: int = 0
    deferred: int = 0
    published_postgres: int = 0
    published_langfuse: int = 0
    recorded: int = 0
    repaired_text: int = 0  # text values no sink could store (lone surrogates, NUL), published as U+FFFD
    more_available: bool = False


class MetricEstimate(BaseModel):
    judge_calls: int = 0
    cost_usd: float = 0.0


class Estimate(BaseModel):
    judge_calls: int = 0
    cost_usd: float = 0.0
    by_metric: dict[str, MetricEstimate] = Field(default_factory=dict)  # metrics with planned judge calls


class RunSummary(BaseModel):
    run_id: str
    monitor: str
    status: RunStatus
    window: dict[str, str | bool]  # since, until (ISO 8601 UTC) and applied (False: the source read everything)
    counts: Counts = Field(default_factory=Counts)
    metrics: dict[str, MetricSummary] = Field(default_factory=dict)
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    cost_usd: float = 0.0
    estimate: Estimate | None = None
    duration_s: float = 0.0
    results_dir: str | None = None
    errors: list[str] = Field(default_factory=list)
    # Signs the extraction is wrong (shared.monitoring.guards) and other notices; never change the status.
    warnings: list[str] = Field(default_factory=list)

    def exit_code(self) -> int:
        """0 ok (also when nothing was new) and dry runs; 1 when the run failed or partly failed."""
        return 0 if self.status in ("ok", "dry_run") else 1
