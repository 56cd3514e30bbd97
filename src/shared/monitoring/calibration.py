"""`evalmon calibrate` and the `calibration:` check of a run: a monitor's judges against human labels.

DATAFLOW (calibrate_monitor):
  human labels  GET /api/public/v3/scores?name=<human>&fromTimestamp..toTimestamp (any source;
                scores evalmon wrote itself are left out) -> HumanLabel per trace or observation
  judge scores  Postgres when DATABASE_URL is set and the monitor publishes there
                (shared.database.read.judge_scores, the labelled items only), else Langfuse: the deterministic score ids of the labelled subjects
                (shared.langfuse.score_body.score_id), then, for subjects not found that way (extractors
                with their own item ids), the metric names on the labelled traces
  -> pair_up    the latest judge score per (subject, metric, version) with the subject's latest label
  -> calibrate  figures per metric version (shared.evaluation.calibration), bootstrap intervals
  -> CalibrationReport (`--json` prints `as_dict()`)

The run-time check (`calibration_warnings`) does the same without intervals, at most once per run:
one read of the labels; when they, the metric versions and the judge source are those of the
cached result (younger than CACHE_MAX_AGE), the judge scores are not read again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console
from rich.markup import escape

from shared.errors import ConfigError
from shared.evaluation.agreement import Figure
from shared.evaluation.calibration import (
    HumanLabel,
    JudgeScore,
    MetricFacts,
    Subject,
    VersionCalibration,
    calibrate,
    pair_up,
)
from shared.evaluation.item import to_utc

if TYPE_CHECKING:
    from shared.evaluation.metric import BaseMetric
    from shared.langfuse.scores import ScoreReader, StoredScore
    from shared.monitoring.monitor import OnlineMonitor
    from shared.monitoring.run_context import RunContext
    from shared.settings import Settings

log = logging.getLogger(__name__)

JudgeSource = Literal["auto", "postgres", "langfuse"]
JUDGE_SOURCES: tuple[JudgeSource, ...] = ("auto", "postgres", "langfuse")
CACHE_MAX_AGE = timedelta(hours=6)


@dataclass
class CalibrationInputs:
    """Who is compared with whom: everything calibration needs to know about the monitor."""

    monitor: str
    source_key: str
    item_level: str
    facts: dict[str, MetricFacts]
    settings: Settings
    publishes_to_postgres: bool = True  # with DATABASE_URL set, "auto" reads the judge scores there


@dataclass
class CalibrationReport:
    monitor: str
    human: str
    judge_source: str
    since: datetime | None
    until: datetime | None
    labels_read: int = 0
    labelled_subjects: int = 0
    unmatched_subjects: int = 0
    versions: list[VersionCalibration] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "human": self.human,
            "judge_source": self.judge_source,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "labels_read": self.labels_read,
            "labelled_subjects": self.labelled_subjects,
            "unmatched_subjects": self.unmatched_subjects,
            "metrics": [v.as_dict() for v in self.versions],
        }


def inputs_of(monitor: OnlineMonitor) -> CalibrationInputs:
    return CalibrationInputs(
        monitor=monitor.name,
        source_key=monitor.source.source_key,
        item_level=monitor.config.item_level,
        facts=facts_of(monitor.metrics),
        settings=monitor.settings,
        publishes_to_postgres=monitor.config.publish.postgres.enabled,
    )


def facts_of(metrics: Iterable[BaseMetric]) -> dict[str, MetricFacts]:
    return {
        m.name: MetricFacts(name=m.name, score_type=m.score_type, direction=m.direction, threshold=m.threshold)
        for m in metrics
    }


async def calibrate_monitor(
    inputs: CalibrationInputs,
    human: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    metric: str | None = None,
    source: JudgeSource = "auto",
    human_threshold: float | None = None,
    intervals: bool = True,
) -> CalibrationReport:
    """Read, pair and compute (module DATAFLOW)."""
    if metric is not None and metric not in inputs.facts:
        raise ConfigError(f"this monitor runs no metric '{metric}'", field="--metric", choices=set(inputs.facts))
    metrics = [metric] if metric else sorted(inputs.facts)
    judge_source = resolve_source(source, inputs)
    reader = _reader(inputs.settings)
    labels = await read_labels(reader, human, inputs.item_level, since=since, until=until)
    judges = await read_judge_scores(inputs, judge_source, reader, metrics, {label.subject for label in labels})
    pairing = pair_up(judges, labels)
    return CalibrationReport(
        monitor=inputs.monitor,
        human=human,
        judge_source=judge_source,
        since=since,
        until=until,
        labels_read=pairing.labels_read,
        labelled_subjects=pairing.labelled_subjects,
        unmatched_subjects=pairing.unmatched_subjects,
        versions=calibrate(pairing, inputs.facts, human_threshold=human_threshold, intervals=intervals),
    )


def resolve_source(source: JudgeSource, inputs: CalibrationInputs) -> str:
    """ "auto": Postgres when DATABASE_URL is set and the monitor publishes there, else Langfuse."""
    settings = inputs.settings
    if source == "auto":
        return "postgres" if settings.database_url is not None and inputs.publishes_to_postgres else "langfuse"
    if source == "postgres" and settings.database_url is None:
        raise ConfigError("judge scores from Postgres need DATABASE_URL", field="--judge-scores")
    return source


def _reader(settings: Settings) -> ScoreReader:
    from shared.langfuse.client import make_client
    from shared.langfuse.scores import ScoreReader

    return ScoreReader(make_client(settings))


async def read_labels(
    reader: ScoreReader, human: str, item_level: str, *, since: datetime | None, until: datetime | None
) -> list[HumanLabel]:
    """Human labels of trace subjects (trace-level monitors) or observation subjects (observation-level)."""
    labels: list[HumanLabel] = []
    for score in await reader.by_name([human], since=since, until=until):
        subject = subject_of(score, item_level)
        if score.written_by_evalmon or subject is None or score.value is None:
            continue
        labels.append(HumanLabel(subject=subject, value=score.value, at=score.timestamp, source=score.source))
    return labels


def subject_of(score: StoredScore, item_level: str) -> Subject | None:
    if item_level == "observation":
        return ("observation", score.observation_id) if score.observation_id else None
    return ("trace", score.trace_id) if score.trace_id and not score.observation_id else None


async def read_judge_scores(
    inputs: CalibrationInputs,
    judge_source: str,
    reader: ScoreReader,
    metrics: Sequence[str],
    subjects: set[Subject],
) -> list[JudgeScore]:
    if not subjects or not metrics:
        return []
    if judge_source == "postgres":
        return await asyncio.to_thread(_postgres_judge_scores, inputs, metrics, subjects)
    return await _langfuse_judge_scores(inputs, reader, metrics, subjects)


def _postgres_judge_scores(
    inputs: CalibrationInputs, metrics: Sequence[str], subjects: set[Subject]
) -> list[JudgeScore]:
    from shared.database import read

    ids = sorted(subject_id for _, subject_id in subjects)
    frame = read.judge_scores(
        inputs.monitor,
        trace_ids=ids if inputs.item_level == "trace" else (),
        item_ids=ids,
        metrics=list(metrics),
        settings=inputs.settings,
    )
    judges: list[JudgeScore] = []
    for row in frame.to_dict("records"):
        if inputs.item_level == "observation":
            subject: Subject = ("observation", _text(row["observation_id"]) or str(row["item_id"]))
        else:
            subject = ("trace", _text(row["trace_id"]) or str(row["item_id"]))
        if subject not in subjects:
            continue
        judges.append(
            JudgeScore(
                subject=subject,
                metric=str(row["metric_name"]),
                version=_text(row["metric_version"]) or "unknown",
                score=_number(row["score"]),
                passed=_flag(row["passed"]),
                threshold=_number(row["threshold"]),
                label=_text(row["label"]),
                scored_at=_when(row["created_at"]),
            )
        )
    return judges


async def _langfuse_judge_scores(
    inputs: CalibrationInputs, reader: ScoreReader, metrics: Sequence[str], subjects: set[Subject]
) -> list[JudgeScore]:
    """By deterministic id first; subjects with no score found that way, by metric name on their traces."""
    from shared.langfuse.score_body import score_id

    ids = [score_id(inputs.monitor, inputs.source_key, subject[1], name) for subject in subjects for name in metrics]
    found = [s for s in await reader.by_ids(ids) if s.name in metrics]
    judges = [j for s in found if (j := _judge_from_langfuse(s, inputs)) is not None]
    # Observation-level item ids are the observation ids, so the ids above find every score. A trace-level
    # extractor may give items ids of its own: look for this monitor's scores on the remaining traces.
    missing = subjects - {j.subject for j in judges}
    if missing and inputs.item_level == "trace":
        for score in await reader.on_traces(metrics, {subject_id for _, subject_id in missing}):
            judge = _judge_from_langfuse(score, inputs)
            if judge is not None and judge.subject in missing and score.metadata.get("monitor") == inputs.monitor:
                judges.append(judge)
    return judges


def _judge_from_langfuse(score: StoredScore, inputs: CalibrationInputs) -> JudgeScore | None:
    subject = subject_of(score, inputs.item_level)
    if subject is None:
        return None
    metadata = score.metadata
    value = score.value
    return JudgeScore(
        subject=subject,
        metric=score.name,
        version=_text(metadata.get("metric_version")) or "unknown",
        score=value if isinstance(value, float) else None,
        passed=_flag(metadata.get("passed")),
        threshold=_number(metadata.get("threshold")),
        label=value if isinstance(value, str) else None,
        scored_at=score.updated_at,
    )


# -- the run-time check ---------------------------------------------------------------------------
async def calibration_warnings(run: RunContext, metrics: Sequence[BaseMetric]) -> list[str]:
    """Warnings for metrics whose latest kappa against people is below `calibration.min_kappa`.

    Never fails a run: a check that cannot be made says so in one warning.
    """
    config = run.config.calibration
    if config is None:
        return []
    started = time.monotonic()
    try:
        kappas = await _latest_kappas(run, metrics)
    except Exception as exc:  # a read that fails is a notice, not a failed run
        log.debug("calibration check failed", exc_info=True)
        return [f"calibration check skipped: {type(exc).__name__}: {exc}"]
    log.debug("calibration check took %.2fs", time.monotonic() - started)
    warnings = []
    for name, (version, kappa, n) in sorted(kappas.items()):
        if kappa < config.min_kappa:
            warnings.append(
                f"calibration: judge '{name}' (version {version}) agrees with human score '{config.human}' at "
                f"kappa {kappa:.2f}, below min_kappa {config.min_kappa:.2f} ({n} labelled item(s) in the last "
                f"{config.lookback_days:g} day(s)); see `evalmon calibrate CONFIG --human {config.human}`"
            )
    return warnings


async def _latest_kappas(run: RunContext, metrics: Sequence[BaseMetric]) -> dict[str, tuple[str, float, int]]:
    """metric -> (version, kappa, n) of its most recently scored version with at least min_n labels."""
    config = run.config.calibration
    assert config is not None
    wanted = [m for m in metrics if config.metrics is None or m.name in config.metrics]
    inputs = CalibrationInputs(
        monitor=run.monitor,
        source_key=run.source_key,
        item_level=run.config.item_level,
        facts=facts_of(wanted),
        settings=run.settings,
        publishes_to_postgres=run.config.publish.postgres.enabled,
    )
    judge_source = resolve_source("auto", inputs)
    reader = _reader(run.settings)
    since = datetime.now(UTC) - timedelta(days=config.lookback_days)
    labels = await read_labels(reader, config.human, inputs.item_level, since=since, until=None)
    fingerprint = _fingerprint(labels, [(m.name, m.version) for m in wanted], judge_source, config.model_dump())
    cache = _cache_path(run)
    cached = _read_cache(cache, fingerprint)
    if cached is not None:
        return cached
    judges = await read_judge_scores(
        inputs, judge_source, reader, sorted(inputs.facts), {label.subject for label in labels}
    )
    versions = calibrate(pair_up(judges, labels), inputs.facts, human_threshold=config.human_threshold, intervals=False)
    latest: dict[str, tuple[str, float, int]] = {}
    for version in versions:  # per metric, most recent version first
        kappa = version.headline_kappa
        if version.metric in latest or version.n < config.min_n or kappa is None:
            continue
        latest[version.metric] = (version.version, kappa, version.n)
    _write_cache(cache, fingerprint, latest)
    return latest


def _fingerprint(labels: Sequence[HumanLabel], versions: Sequence[tuple[str, str]], source: str, config: Any) -> str:
    blob = json.dumps(
        {
            "labels": sorted((list(label.subject), str(label.value), label.at.isoformat()) for label in labels),
            "versions": sorted(versions),
            "source": source,
            "config": config,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _cache_path(run: RunContext) -> Path:
    return run.results_dir.parent / ".calibration" / f"{run.monitor}.json"


def _read_cache(path: Path, fingerprint: str) -> dict[str, tuple[str, float, int]] | None:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        age = datetime.now(UTC) - datetime.fromisoformat(body["computed_at"])
        if body.get("fingerprint") != fingerprint or age > CACHE_MAX_AGE:
            return None
        return {name: (str(v[0]), float(v[1]), int(v[2])) for name, v in body["kappas"].items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def _write_cache(path: Path, fingerprint: str, kappas: dict[str, tuple[str, float, int]]) -> None:
    body = {"fingerprint": fingerprint, "computed_at": datetime.now(UTC).isoformat(), "kappas": kappas}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body), encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:  # a cache that cannot be written only costs the next run a read
        log.debug("could not write the calibration cache %s: %s", path, exc)


# -- rendering ------------------------------------------------------------------------------------
def render(report: CalibrationReport, console: Console) -> None:
    """The human view of a CalibrationReport."""
    window = f"{_day(report.since)} .. {_day(report.until)}"
    console.print(
        f"[bold]{escape(report.monitor)}[/bold] against human score '{escape(report.human)}' ({window}); "
        f"judge scores from {report.judge_source}",
        highlight=False,
    )
    console.print(
        f"{report.labels_read} label(s) read, {report.labelled_subjects} labelled item(s), "
        f"{report.unmatched_subjects} without a judge score of this monitor",
        highlight=False,
    )
    if not report.versions:
        console.print("nothing to compare: no labelled item has a judge score of this monitor")
        return
    for v in report.versions:
        categorical = v.score_type == "categorical"
        console.print(f"\n[bold]{escape(v.metric)}[/bold]  version {escape(v.version)}  n {v.n}", highlight=False)
        lines = [
            ("agreement", v.label_agreement if categorical and v.label_agreement else v.agreement),
            ("kappa", v.kappa_categorical if categorical and v.kappa_categorical else v.kappa),
            ("spearman", v.spearman),
            ("pearson", v.pearson),
            ("best threshold", v.best_threshold),
        ]
        for name, value in lines:
            if value is None:
                continue
            note = ""
            if name == "best threshold" and v.best_agreement is not None and v.best_agreement.value is not None:
                note = f"  (agrees {v.best_agreement.value:.0%}; configured {v.threshold})"
            console.print(f"  {name:<15}{_figure(value)}{note}", highlight=False)
        if v.confusion:
            c = v.confusion
            console.print(f"  confusion at threshold {v.threshold}   human pass  human fail", highlight=False)
            console.print(f"    judge pass {c['both_pass']:>26}  {c['judge_pass_human_fail']:>10}", highlight=False)
            console.print(f"    judge fail {c['judge_fail_human_pass']:>26}  {c['both_fail']:>10}", highlight=False)
    console.print("\n[dim]figures: value [95% bootstrap interval]; pass/fail at the metric's threshold[/dim]")


def _figure(value: Figure | None) -> str:
    if value is None or value.value is None:
        return "-"
    if value.low is None or value.high is None:
        return f"{value.value:.2f}"
    return f"{value.value:.2f} [{value.low:.2f}, {value.high:.2f}]"


def _day(value: datetime | None) -> str:
    return value.isoformat() if value else "any time"


# -- value coercion (Postgres rows and Langfuse metadata, whose values may come back as strings) ---
def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if hasattr(value, "item") and isinstance(value.item(), bool):  # numpy.bool_ from a DataFrame
        return bool(value.item())
    return None


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text or None


def _when(value: Any) -> datetime | None:
    if value is None or value != value:  # None, NaT
        return None
    try:
        stamp = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
    except (TypeError, ValueError):
        return None
    return to_utc(stamp) if isinstance(stamp, datetime) else None


def check_judge_source(source: str) -> JudgeSource:
    """`--judge-scores`, checked before the monitor is loaded."""
    for known in JUDGE_SOURCES:
        if source == known:
            return known
    raise ConfigError(f"unknown judge score source '{source}'", field="--judge-scores", choices=set(JUDGE_SOURCES))
