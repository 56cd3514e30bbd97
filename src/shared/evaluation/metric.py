"""Metric base class, the `@metric` registry decorator, and `MetricResult`.

A metric is a class with a pydantic `Params` model (validated when the config loads) and an
`async execute(item) -> MetricResult`. The registry resolves config keys (or dotted paths) to
metric classes, the same way sources and extractors resolve.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import ConfigError
from shared.evaluation.config import EvaluationConfig
from shared.evaluation.item import DatasetItem
from shared.registry import Registry, validate_params
from shared.settings import Settings

MetricKind = Literal["heuristic", "llm"]
ScoreType = Literal["numeric", "boolean", "categorical"]
# Which way a score is good. A lower_is_better boolean metric is a flag: 1 means the problem is there.
Direction = Literal["higher_is_better", "lower_is_better"]


def direction_label(direction: str, score_type: str = "numeric") -> str:
    """How a reader should take a score: 'higher is better', 'lower is better' or 'flag: 1 is bad'."""
    if direction == "lower_is_better":
        return "flag: 1 is bad" if score_type == "boolean" else "lower is better"
    return "higher is better"


class MetricStatus(StrEnum):
    """What happened to one (item, metric) pair.

    ok: scored. error: the metric failed (item stays unscored for it). skipped: not applicable
    (a required field is missing; recorded, since a rerun would not change that). deferred: not
    attempted this run (budget reached, circuit open); a later run picks it up.
    """

    OK = "ok"
    ERROR = "error"
    SKIPPED = "skipped"
    DEFERRED = "deferred"


class MetricResult(BaseModel):
    """What one metric says about one item. Failures are rows with `error`, never None."""

    model_config = ConfigDict(extra="forbid")

    score: float | None = None
    passed: bool | None = None
    threshold: float | None = None
    label: str | None = None
    explanation: str = ""
    signals: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    status: MetricStatus = MetricStatus.OK
    cost_usd: float = 0.0
    latency_s: float = 0.0
    model: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    @classmethod
    def failure(cls, error: str, *, signals: dict[str, Any] | None = None) -> MetricResult:
        return cls(status=MetricStatus.ERROR, error=error, signals=signals or {})

    @classmethod
    def skipped(cls, reason: str) -> MetricResult:
        return cls(status=MetricStatus.SKIPPED, explanation=reason)

    @classmethod
    def deferred(cls, reason: str) -> MetricResult:
        return cls(status=MetricStatus.DEFERRED, explanation=reason)


@dataclass
class MetricContext:
    """Run-scoped resources handed to `BaseMetric.setup` (settings, budget, shared clients).

    `shared` holds objects that several metrics of one run must share, such as the judge budget
    or rate limiter; metrics create them with `shared.setdefault(key, factory())`.
    """

    settings: Settings = field(default_factory=Settings)
    base_dir: Path = field(default_factory=Path.cwd)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    dry_run: bool = False
    shared: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CostEstimate:
    calls: int = 0
    cost_usd: float = 0.0


class MetricParams(BaseModel):
    """Base of every metric's params: unknown keys are config errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseMetric(ABC):
    """Subclass, decorate with `@metric(...)`, implement `execute`.

    Class attributes are filled by the decorator. `direction` says which way a score is good
    (shown by `evalmon metrics`, the run summary and every result row); `lower_is_better` flips
    the pass test (for example PII leakage: 0 is good). `higher_is_better` is the same fact as a
    bool. `name` is the instance's name in a monitor (defaults to
    the key) so one metric class can run twice with different params.
    """

    key: ClassVar[str] = ""
    description: ClassVar[str] = ""
    required_fields: ClassVar[tuple[str, ...]] = ()
    default_threshold: ClassVar[float | None] = None
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    kind: ClassVar[MetricKind] = "heuristic"
    score_type: ClassVar[ScoreType] = "numeric"
    direction: ClassVar[Direction] = "higher_is_better"
    higher_is_better: ClassVar[bool] = True
    Params: ClassVar[type[MetricParams]] = MetricParams

    # `field:` in a metric's params when the metric does not read it itself: the text this metric reads
    # as `actual_output` (an item field, a path inside one, or a trace path; see `read_field`).
    source_field: str | None = None
    # Where relative paths in params (prompt files, caches) resolve before `setup` (whose context carries
    # the same folder): the monitor sets its base_dir, the config's repository root; None: the cwd.
    base_dir: Path | None = None

    def __init__(
        self, params: MetricParams | None = None, *, threshold: float | None = None, name: str | None = None
    ) -> None:
        self.params = params if params is not None else self.Params()
        self.threshold = threshold if threshold is not None else self.default_threshold
        self.name = name or self.key
        self.prepare()

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Precompute from validated params (regexes, schemas) once, not per item."""

    # -- identity -------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        """Judge model / prompt identity; part of the version. Heuristics have none."""
        return {}

    @property
    def version(self) -> str:
        """Short hash of key, params, threshold and provenance (architecture.md section 3)."""
        blob = json.dumps(
            {
                "key": self.key,
                "params": self.params.model_dump(mode="json"),
                "threshold": self.threshold,
                "provenance": self.provenance(),
                **({"field": self.source_field} if self.source_field else {}),
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def view(self, item: DatasetItem) -> DatasetItem:
        """The item as this metric sees it: with `field:` set, that text stands in for actual_output."""
        if self.source_field is None:
            return item
        return item.model_copy(update={"actual_output": read_field(item, self.source_field)})

    @property
    def record_path(self) -> str | None:
        """A `field:` path the extractor must read from the record (not from an item field)."""
        field_path = self.source_field
        return field_path if field_path and field_path.split(".", 1)[0] not in DatasetItem.model_fields else None

    # -- scoring --------------------------------------------------------------------------
    def missing_fields(self, item: DatasetItem) -> list[str]:
        return [name for name in self.required_fields if not item.has_field(name)]

    def judge(self, score: float | None) -> bool | None:
        """Pass/fail of a score against the threshold (None when there is no threshold)."""
        if score is None or self.threshold is None or math.isnan(score):
            return None
        return score >= self.threshold if self.higher_is_better else score <= self.threshold

    def result(self, score: float | None, explanation: str = "", **extra: Any) -> MetricResult:
        """Build an OK result with `passed` and `threshold` filled consistently."""
        return MetricResult(
            score=score, passed=self.judge(score), threshold=self.threshold, explanation=explanation, **extra
        )

    async def setup(self, context: MetricContext) -> None:  # noqa: B027 - optional hook
        """Called once per run before any `execute` (open clients, join the shared budget)."""

    def estimate(self, items: Sequence[DatasetItem]) -> CostEstimate:
        """Calls and cost this metric would make on `items` (printed by `--dry-run`)."""
        return CostEstimate()

    @abstractmethod
    async def execute(self, item: DatasetItem) -> MetricResult:
        """Score one item. Raise TransientError to be retried, MetricError for an error row."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most metrics hold nothing
        """Release clients at the end of a run."""


# The built-in catalogue (shared.metrics) registers itself on first lookup: the core does not import it.
metric_registry: Registry[type[BaseMetric]] = Registry("metric", builtin_modules=["shared.metrics"])

M = TypeVar("M", bound=type[BaseMetric])


def metric(
    *,
    key: str,
    description: str,
    required_fields: Sequence[str] = (),
    default_threshold: float | None = None,
    score_range: tuple[float, float] = (0.0, 1.0),
    kind: MetricKind = "heuristic",
    score_type: ScoreType = "numeric",
    higher_is_better: bool | None = None,
    direction: Direction | None = None,
) -> Callable[[M], M]:
    """Register a metric class under `key` (Inspect-style registry decorator).

    Declare which way a score is good with `direction` (or the older `higher_is_better`);
    unset, higher is better.
    """
    if direction is not None and higher_is_better is not None and higher_is_better != (direction == "higher_is_better"):
        raise ValueError(f"metric {key!r}: direction={direction!r} contradicts higher_is_better={higher_is_better}")
    declared: Direction = direction or ("lower_is_better" if higher_is_better is False else "higher_is_better")

    def wrap(cls: M) -> M:
        cls.key = key
        cls.description = description
        cls.required_fields = tuple(required_fields)
        cls.default_threshold = default_threshold
        cls.score_range = score_range
        cls.kind = kind
        cls.score_type = score_type
        cls.direction = declared
        cls.higher_is_better = declared == "higher_is_better"
        metric_registry.register(key, cls)
        return cls

    return wrap


def build_metric(
    key: str,
    *,
    params: dict[str, Any] | None = None,
    threshold: float | None = None,
    name: str | None = None,
    field: str | None = None,
) -> BaseMetric:
    """Resolve a metric key and validate its params; errors name the config field."""
    load_builtin_metrics()
    cls = metric_registry.resolve(key, field=f"{field}.key" if field else "key")
    if not (isinstance(cls, type) and issubclass(cls, BaseMetric)):
        raise ConfigError(f"'{key}' is not a metric class", field=field)
    params, source_field = _split_field(cls, dict(params or {}), ".".join(p for p in (field, "params", "field") if p))
    parsed = validate_params(cls.Params, params, field=".".join(p for p in (field, "params") if p))
    built = cls(parsed, threshold=threshold, name=name)
    built.source_field = source_field
    return built


def _split_field(cls: type[BaseMetric], params: dict[str, Any], where: str) -> tuple[dict[str, Any], str | None]:
    """Every metric takes `field:`. A metric whose params accept the value reads it itself; otherwise
    (a path such as `recommendation.output.rationale`, or a metric without a `field` param) it is
    taken out and becomes `source_field`, read for the metric by `BaseMetric.view`."""
    value = params.get("field")
    if value is None:
        return params, None
    if "field" in cls.Params.model_fields:
        try:
            cls.Params.model_validate({"field": value})
            return params, None
        except ValidationError as exc:
            if not any(e["loc"][:1] == ("field",) for e in exc.errors()):
                return params, None  # the field value is fine; let the full validation report the rest
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("must be an item field or a path such as 'recommendation.output.rationale'", field=where)
    return {k: v for k, v in params.items() if k != "field"}, value.strip()


# Where extractors put the text of `field:` trace paths: item.metadata[FIELD_PATHS_KEY][path].
FIELD_PATHS_KEY = "field_paths"


def read_field(item: DatasetItem, path: str) -> str | None:
    """The text a `field:` names: an item field (`query`), a key inside one (`actual_output.rationale`
    where actual_output is JSON text, `additional_output.parsed_output.rationale`), or a trace path the
    extractor read into `metadata.field_paths`."""
    head, _, rest = path.partition(".")
    if head not in DatasetItem.model_fields:
        found = item.metadata.get(FIELD_PATHS_KEY, {})
        text = found.get(path) if isinstance(found, dict) else None
        return text if isinstance(text, str) else None
    value: Any = getattr(item, head)
    for part in rest.split(".") if rest else []:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def load_builtin_metrics() -> None:
    """Import the shared metric modules so their decorators register them."""
    metric_registry.load_builtins()
