"""Monitor configuration: the YAML schema (pydantic models) and its loader.

Loading is strict: unknown keys, unknown plug-ins, inline secrets and missing sampling sizes are
config errors naming the file and the field path (architecture.md section 6), raised before any work.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.errors import ConfigError
from shared.evaluation.config import EvaluationConfig
from shared.monitoring.extraction.paths import FieldSpec

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"
# Upper bounds keep every duration a datetime can hold (a window of 1e20 minutes would overflow).
MAX_WINDOW_MINUTES = 1000 * 366 * 24 * 60  # 1000 years
MAX_WAIT_S = 7 * 24 * 3600  # a week
MAX_INTERVAL_MINUTES = 366 * 24 * 60  # a year


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WindowConfig(Strict):
    """`[now - lookback, now - settle]`, or explicit `since`/`until` (UTC, ISO 8601)."""

    lookback_minutes: float = Field(default=70.0, gt=0, le=MAX_WINDOW_MINUTES)
    settle_minutes: float = Field(default=10.0, ge=0, le=MAX_WINDOW_MINUTES)
    since: datetime | None = None
    until: datetime | None = None


class SourceConfig(BaseModel):
    """`type` picks the source; the other keys are validated by that source's own Params model."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1)
    key: str | None = Field(default=None, pattern=NAME_PATTERN, description="source_key of item identity")

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# The built-in samplers; `strategy` also takes any registered sampler's key (docs/plugins.md), checked
# against the sampler registry when the monitor is built (after `plugins:` modules have registered theirs).
SamplingStrategy = Literal["all", "random", "most_recent", "oldest", "rate", "stratified"]


class SamplingConfig(Strict):
    strategy: str = Field(
        default="all", min_length=1, description="all, random, most_recent, oldest, rate, stratified or a plug-in's"
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="a plug-in sampler's own options (validated by its Params model)"
    )
    n: int | None = Field(default=None, gt=0, description="sample size (random, most_recent, oldest)")
    rate: float | None = Field(default=None, gt=0, le=1, description="share of items kept (rate)")
    seed: int = 0
    field: str | None = Field(default=None, description="field path to stratify by (stratified)")
    min_per_stratum: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _needs(self) -> SamplingConfig:
        if self.strategy in ("random", "most_recent", "oldest", "stratified") and self.n is None:
            raise ValueError(f"sampling strategy '{self.strategy}' needs 'n' (the sample size)")
        if self.strategy == "rate" and self.rate is None:
            raise ValueError("sampling strategy 'rate' needs 'rate' (a share between 0 and 1)")
        if self.strategy == "stratified" and not self.field:
            raise ValueError("sampling strategy 'stratified' needs 'field' (the field path to stratify by)")
        return self


# The SamplingConfig fields each built-in strategy reads (sampling.py); a plug-in sampler may read any.
SAMPLING_FIELDS_USED: dict[str, frozenset[str]] = {
    "all": frozenset(),
    "random": frozenset({"n", "seed"}),
    "most_recent": frozenset({"n"}),
    "oldest": frozenset({"n"}),
    "rate": frozenset({"rate", "seed"}),
    "stratified": frozenset({"n", "seed", "field", "min_per_stratum"}),
}


def reject_ignored_overrides(config: MonitorConfig, overrides: Sequence[str]) -> None:
    """`--set sampling.n=50` under strategy `all` would change nothing: a ConfigError naming the field,
    rather than a run that silently ignores what was asked."""
    strategy = config.sampling.strategy
    used = SAMPLING_FIELDS_USED.get(strategy)
    if used is None:
        return
    for override in overrides:
        path = override.partition("=")[0].strip()
        section, _, name = path.partition(".")
        name = name.split(".", 1)[0]
        if section != "sampling" or name == "strategy" or name in used or name not in SamplingConfig.model_fields:
            continue
        readers = [key for key, fields in SAMPLING_FIELDS_USED.items() if name in fields]
        by = ", ".join(readers) or "plug-in samplers"
        raise ConfigError(
            f"sampling strategy '{strategy}' ignores '{name}' (read by {by}); set sampling.strategy too, or drop this --set",
            field=path,
        )


class MetricSpec(Strict):
    key: str = Field(min_length=1, description="registry key or dotted path of the metric class")
    name: str | None = Field(default=None, pattern=NAME_PATTERN, description="defaults to the key")
    threshold: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class DedupConfig(Strict):
    store: Literal["csv", "postgres", "none"] = "csv"
    path: str = "data/scored_items.csv"
    lock_timeout_s: float = Field(default=600.0, ge=0, le=MAX_WAIT_S, description="wait this long for another run")
    claim_ttl_s: float = Field(
        default=30.0, gt=0, le=MAX_WAIT_S, description="a worker's claims outlive it by at most this (postgres)"
    )


class LocalPublishConfig(Strict):
    dir: str = "data/runs"
    format: Literal["parquet", "csv"] = Field(
        default="parquet",
        description="items/ and results/ as Parquet part files (one per chunk, zstd; read_results() opens them), "
        "or items.csv and results.csv",
    )
    results_with_text: bool = Field(
        default=False,
        description="also write results_with_text.csv: each (item, metric) row with the item's text, for spreadsheets",
    )
    keep_runs: int | None = Field(
        default=200, ge=1, description="newest run folders of this monitor kept; older ones are deleted (null: all)"
    )


class PostgresPublishConfig(Strict):
    enabled: bool = True


REVIEW_SCORE_CONDITION = re.compile(r"^\s*score\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")
# Langfuse score config names: at most 35 letters, digits, underscores, spaces, periods, parentheses, hyphens.
SCORE_CONFIG_NAME = r"^[A-Za-z0-9_ .()-]{1,35}$"


class ReviewConfig(Strict):
    """`publish.langfuse.review`: items the judge flagged go to a Langfuse annotation queue, once each."""

    queue: str = Field(min_length=1, max_length=200, description="annotation queue name; created when missing")
    when: str = Field(default="failed", description="failed | errors | 'score < 0.3' (also <=, >, >=)")
    max_per_run: int = Field(default=50, ge=1, le=10_000, description="queue at most this many items per run")
    metrics: list[str] | None = Field(default=None, description="only these metrics' results (default: all)")
    human_score: str = Field(
        default="human_review",
        pattern=SCORE_CONFIG_NAME,
        description="score config reviewers fill in when evalmon creates the queue (BOOLEAN, found or created); "
        "`evalmon calibrate CONFIG --human <this>` compares it with the judge",
    )

    @field_validator("when")
    @classmethod
    def _known_condition(cls, value: str) -> str:
        if value in ("failed", "errors") or REVIEW_SCORE_CONDITION.match(value):
            return value
        raise ValueError(f"unknown review condition {value!r} (valid: failed, errors, 'score < 0.3' with <, <=, >, >=)")

    def score_condition(self) -> tuple[str, float] | None:
        """(operator, value) of a `score < x` condition; None for failed/errors."""
        found = REVIEW_SCORE_CONDITION.match(self.when)
        return (found.group(1), float(found.group(2))) if found else None


class LangfusePublishConfig(Strict):
    enabled: bool = True
    environment: str | None = None
    experiment: bool = False
    dataset_name: str | None = None
    review: ReviewConfig | None = None
    regression_dataset: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Langfuse dataset that failing items join (deterministic ids: once each, whatever the reruns)",
    )


class CalibrationConfig(Strict):
    """`calibration:`: a run warns when a judge's agreement with people (Cohen's kappa) is below a floor."""

    human: str = Field(min_length=1, description="name of the human score in Langfuse (any source)")
    min_kappa: float = Field(default=0.4, ge=-1, le=1)
    min_n: int = Field(default=20, ge=2, description="labelled items a metric version needs before its kappa counts")
    lookback_days: float = Field(default=30.0, gt=0, le=3660, description="human labels given this far back")
    metrics: list[str] | None = Field(default=None, description="only these metrics (default: all)")
    human_threshold: float | None = Field(
        default=None, description="a human value at or past this passes (default: the metric's threshold)"
    )


class SlackPublishConfig(Strict):
    """A run report in Slack: header, counts, the metric table, a chart, and the alerts in its thread."""

    channel: str = Field(min_length=1, description="channel name (#evals) or id (C0123ABC)")
    on: Literal["always", "alerts", "never"] = Field(
        default="alerts", description="always: every run; alerts: runs that open, worsen or resolve an alert"
    )

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, value: Any) -> Any:
        """YAML 1.1 reads an unquoted `on:` key as the boolean true (as GitHub workflows know)."""
        if isinstance(value, dict) and True in value and "on" not in value:
            value = {("on" if key is True else key): item for key, item in value.items()}
        return value


class SinkSpec(BaseModel):
    """A `publish.sinks` entry: a registered sink by `type`; the other keys are validated by that
    sink's own Params model (docs/plugins.md)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1, description="registry key or dotted path of the Sink class")
    required: bool = Field(default=True, description="a required sink's failure keeps its pairs out of the ledger")
    name: str | None = Field(default=None, pattern=NAME_PATTERN, description="the sink's name in reports; default type")

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PublishConfig(Strict):
    local: LocalPublishConfig = Field(default_factory=LocalPublishConfig)
    postgres: PostgresPublishConfig = Field(default_factory=lambda: PostgresPublishConfig(enabled=False))
    langfuse: LangfusePublishConfig = Field(default_factory=lambda: LangfusePublishConfig(enabled=False))
    slack: SlackPublishConfig | None = None
    sinks: list[SinkSpec] = Field(default_factory=list, description="more sinks, registered by plug-ins")

    @field_validator("postgres", "langfuse", mode="before")
    @classmethod
    def _bool_shorthand(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value


class BaselineCompare(Strict):
    """The earlier runs a baseline rule compares with: the last `runs` runs, or the last `days` days."""

    runs: int | None = Field(default=None, ge=2, le=1000)
    days: float | None = Field(default=None, gt=0, le=366)

    @model_validator(mode="after")
    def _one(self) -> BaselineCompare:
        if (self.runs is None) == (self.days is None):
            raise ValueError("compare needs exactly one of 'runs' (e.g. runs: 24) or 'days' (e.g. days: 7)")
        return self

    def describe(self) -> str:
        return f"last {self.runs} runs" if self.runs is not None else f"last {self.days:g} days"


class AlertRule(Strict):
    """A threshold rule (`op` + `threshold`) or a baseline rule (`compare`): see docs/alerts.md."""

    metric: str
    stat: Literal["mean", "pass_rate", "error_rate"] = "mean"
    op: Literal["<", "<=", ">", ">="] | None = Field(default=None, description="threshold rules; default '<'")
    threshold: float | None = None
    compare: BaselineCompare | None = Field(default=None, description="baseline rules: {runs: 24} or {days: 7}")
    alpha: float = Field(
        default=0.01, gt=0, lt=0.5, description="chance of a false alarm per run (baseline); of a false 'worsened'"
    )
    min_n: int = Field(default=10, ge=1, description="no alert below this many scored items")

    @model_validator(mode="after")
    def _threshold_or_baseline(self) -> AlertRule:
        if self.compare is None and self.threshold is None:
            raise ValueError("an alert rule needs 'threshold' (with 'op') or 'compare' (a baseline: {runs: 24})")
        if self.compare is not None and (self.threshold is not None or self.op is not None):
            raise ValueError(
                "a baseline rule ('compare') fires in the metric's own bad direction: drop 'threshold' and 'op'"
            )
        if self.compare is None and self.op is None:
            self.op = "<"
        return self

    @property
    def key(self) -> str:
        """The rule's identity for incidents: the same rule keeps its incident across config edits."""
        kind = "baseline" if self.compare is not None else f"{self.op}{self.threshold:g}"
        return f"{self.metric}/{self.stat}/{kind}"


class AlertsConfig(Strict):
    channel: str | None = Field(default=None, description="Slack channel; default SLACK_ALERT_CHANNEL")
    rules: list[AlertRule] = Field(default_factory=list)
    worst_items: int = Field(default=5, ge=0, le=20)
    trace_url_template: str | None = Field(default=None, description="e.g. https://host/trace/{trace_id}")
    state_path: str | None = Field(
        default=None,
        description="incident state file without DATABASE_URL; default alerts.state.json beside dedup.path",
    )


class ScheduleConfig(Strict):
    """When `evalmon schedule` runs the monitor; `github_actions` also puts it in the hourly workflow."""

    interval_minutes: float | None = Field(default=None, gt=0, le=MAX_INTERVAL_MINUTES)
    cron: str | None = None
    misfire_grace_s: int = Field(default=1800, ge=1, le=MAX_WAIT_S)
    github_actions: bool = Field(
        default=False, description="run by .github/workflows/monitoring.yml (`evalmon cron-matrix` lists these)"
    )

    @model_validator(mode="after")
    def _one(self) -> ScheduleConfig:
        if (self.interval_minutes is None) == (self.cron is None):
            raise ValueError("schedule needs exactly one of 'interval_minutes' or 'cron'")
        return self


class MonitorConfig(Strict):
    monitor: str = Field(pattern=NAME_PATTERN, description="monitor name: part of every item key")
    description: str = ""
    plugins: list[str] = Field(default_factory=list, description="modules imported to register plug-ins")
    item_level: Literal["trace", "observation"] = "trace"
    source: SourceConfig
    window: WindowConfig = Field(default_factory=WindowConfig)
    extractor: str = Field(default="default", description="'default' or a dotted path to record -> item")
    extractor_fields: dict[str, str | FieldSpec] = Field(
        default_factory=dict,
        description="item field -> path (`recommendation.output.rationale`, `type:RETRIEVER.output`) or "
        "{path, section} (a prompt section; numbered items become documents), default extractor",
    )
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    limit: int | None = Field(default=None, gt=0, description="cap on new items taken in one run")
    metrics: list[MetricSpec] = Field(min_length=1)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    schedule: ScheduleConfig | None = None
    calibration: CalibrationConfig | None = None

    @model_validator(mode="after")
    def _unique_metric_names(self) -> MonitorConfig:
        seen: set[str] = set()
        for spec in self.metrics:
            name = spec.name or spec.key
            if name in seen:
                raise ValueError(f"metric name '{name}' appears twice; give one of them a 'name'")
            seen.add(name)
        return self

    @model_validator(mode="after")
    def _alerts_name_metrics(self) -> MonitorConfig:
        names = {spec.name or spec.key for spec in self.metrics}
        for rule in self.alerts.rules:
            if rule.metric not in names:
                raise ValueError(
                    f"alert rule names metric '{rule.metric}', which this monitor does not run "
                    f"(valid: {', '.join(sorted(names))})"
                )
        return self

    @model_validator(mode="after")
    def _calibration_and_review_name_metrics(self) -> MonitorConfig:
        names = {spec.name or spec.key for spec in self.metrics}
        review = self.publish.langfuse.review
        for where, listed in (
            ("calibration.metrics", self.calibration.metrics if self.calibration else None),
            ("publish.langfuse.review.metrics", review.metrics if review else None),
        ):
            unknown = [m for m in listed or [] if m not in names]
            if unknown:
                raise ValueError(
                    f"{where} names metric '{unknown[0]}', which this monitor does not run "
                    f"(valid: {', '.join(sorted(names))})"
                )
        return self

    def config_hash(self) -> str:
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


SECRET_KEY_PATTERN = re.compile(r"(secret|password|passwd|token|api_?key|private_?key|credential)", re.I)
SECRET_VALUE_PATTERN = re.compile(
    r"(sk-lf-[\w-]{6,}|sk-[A-Za-z0-9_-]{20,}|xox[abposr]-[\w-]{6,}|lf-whsec_\w+|"
    r"postgres(?:ql)?://[^:/@\s]+:[^@\s]+@)"
)


def model_at(path: tuple[str | int, ...], root: type[BaseModel] = MonitorConfig) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `path` (to list valid keys in errors)."""
    model: Any = root
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = _inner_model(model.model_fields[part].annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


ALERT_STATE_FILE = "alerts.state.json"


def alert_state_path(config: MonitorConfig) -> Path:
    """The incident state file used without DATABASE_URL: `alerts.state_path`, else beside `dedup.path`
    (so the cron carries it in the same cache as the ledger)."""
    configured = config.alerts.state_path
    return Path(configured) if configured else Path(config.dedup.path).parent / ALERT_STATE_FILE


# What marks a repository root: relative paths in a config resolve against the nearest ancestor
# folder of the config file holding one of these, else against the config's own folder.
ROOT_MARKERS = (".git", "pyproject.toml")


def config_root(config_path: str | Path) -> Path:
    """The folder a config's relative paths (source.path, dedup.path, publish.local.dir, alerts.state_path,
    judge cache and prompt files) resolve against: the config's repository root, else its own folder.

    Fixed by where the config file lives, never by the current directory, so `validate`, `run`,
    `schedule` and the cron agree from anywhere (architecture.md section 7).
    """
    folder = Path(config_path).resolve().parent
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).exists() for marker in ROOT_MARKERS):
            return candidate
    return folder


def resolve_path(value: str | Path, base_dir: Path) -> Path:
    """A config path as it is used: absolute as written, relative against `base_dir` (see config_root)."""
    path = Path(value)
    return path if path.is_absolute() else base_dir / path


def find_config(name_or_path: str, *, search_root: Path | None = None) -> Path:
    """A path as given, or a bare name resolved under src/implementations/*/config/."""
    from shared.errors import ConfigError
    from shared.registry import did_you_mean

    direct = Path(name_or_path)
    if direct.is_file():
        return direct
    if direct.exists():
        problem = "is a directory, not a config file" if direct.is_dir() else "is not a regular file"
        raise ConfigError(problem, file=name_or_path)
    if len(direct.parts) > 1:  # a path, not a bare name: never fall back to a bundled config of that name
        raise ConfigError("no such file", file=name_or_path)
    stem = direct.name.removesuffix(".yaml").removesuffix(".yml")
    known = bundled_configs(search_root=search_root)
    candidates = [path for path in known if path.stem == stem]
    if candidates:
        return candidates[0]
    stems = {path.stem for path in known}
    raise ConfigError(f"no config file '{name_or_path}'{did_you_mean(stem, stems)}", choices=stems)


def bundled_configs(*, search_root: Path | None = None) -> list[Path]:
    """Every config a bare name can resolve to: src/implementations/*/config/*.yaml (and .yml), in search order."""
    roots = [Path(__file__).resolve().parents[2] / "implementations"]
    if search_root is not None:
        roots.insert(0, search_root / "src" / "implementations")
    return [path for root in roots for suffix in (".yaml", ".yml") for path in sorted(root.glob(f"*/config/*{suffix}"))]
