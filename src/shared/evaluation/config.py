"""`EvaluationConfig`: how hard the runner pushes metrics (the `evaluation:` block of a monitor)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EvaluationConfig(BaseModel):
    """How hard to push the metrics. Also the `evaluation:` block of a monitor config."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(default=8, gt=0, le=1024, description="(item, metric) pairs in flight")
    timeout_s: float = Field(default=60.0, gt=0, description="per attempt of one metric on one item")
    retries: int = Field(default=2, ge=0, le=10, description="extra attempts on transient errors")
    max_error_rate: float = Field(default=0.2, ge=0, le=1, description="above this the run fails")
    max_cost_usd: float | None = Field(default=None, ge=0, description="judge budget for one run")
    chunk_size: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="items evaluated, published and recorded together: a finished chunk stays done",
    )
