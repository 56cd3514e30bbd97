"""Alert rules over one run's metric summaries: thresholds, and baselines that know what usual looks like.

DATAFLOW (the monitor calls shared.monitoring.notify, which calls these):

    load_baselines(rules, run, versions)            per baseline rule: the earlier runs it compares with,
      from Postgres, else the scores published to Langfuse, else the runs folder (first with data)
    evaluate_rules(config, metrics, rows, baselines) -> RuleOutcome per rule:
      threshold rule: the run's mean / pass rate / error rate `op threshold`
      baseline rule:  one-sided test "worse than the baseline by more than chance" at `alpha`,
                      in the metric's own bad direction (docs/alerts.md)
      firing (an Alert, with the worst items) | quiet | unknown (too few items, no baseline yet)
    shared.monitoring.incidents turns outcomes into opened / worsened / resolved notices;
    notice_message renders them as one Block Kit message.

`Alert.model_dump()` is what goes into the RunSummary `alerts` list.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import operator
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel

from shared.errors import ConfigError
from shared.evaluation.metric import MetricStatus
from shared.evaluation.results import EvaluationResult, MetricSummary, ResultRow
from shared.monitoring.config import AlertRule, AlertsConfig
from shared.monitoring.run_context import RunContext
from shared.monitoring.window import iso
from shared.reporting.history import (
    MetricFigures,
    RunFigures,
    langfuse_history,
    postgres_history,
    runs_folder_history,
    select_runs,
)
from shared.reporting.stats import (
    RunningMoments,
    between_run_variance,
    mean_estimates,
    mean_shift_p_value,
    rate_estimates,
    rate_worse_p_value,
)
from shared.settings import Settings
from shared.slack.mrkdwn import code, escape
from shared.slack.service import SlackService

log = logging.getLogger(__name__)

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# Slack caps: a section's text at 3000 characters, a header at 150, a message at 50 blocks.
SECTION_LIMIT = 2900
MAX_ALERT_SECTIONS = 20
STAT_LABELS = {"mean": "mean", "pass_rate": "pass rate", "error_rate": "error rate"}

NoticeKind = Literal["opened", "worsened", "resolved"]
IncidentMark = Literal["opened", "worsened", "ongoing", "backfill"]


class AlertItem(BaseModel):
    """One of the worst items behind an alert, with a link to look at it."""

    id: str
    score: float | None = None
    passed: bool | None = None
    error: str | None = None
    url: str | None = None


class BaselineInfo(BaseModel):
    """What a baseline rule compared the run with."""

    source: str  # postgres | langfuse | runs folder
    compare: str  # "last 24 runs" / "last 7 days"
    runs: int
    n: int
    value: float
    before: str  # the baseline's runs ended before this time (frozen while an incident is open)


class Alert(BaseModel):
    """A rule's reading in this run: the number against its threshold or baseline, and the worst items.

    A firing rule's Alert goes into the RunSummary; a quiet one describes a "resolved" notice.
    """

    metric: str
    stat: Literal["mean", "pass_rate", "error_rate"]
    rule: str = ""
    kind: Literal["threshold", "baseline"] = "threshold"
    op: Literal["<", "<=", ">", ">="] | None = None
    threshold: float | None = None
    value: float
    n: int
    direction: str = "higher_is_better"
    baseline: BaselineInfo | None = None
    p_value: float | None = None
    alpha: float | None = None
    incident: IncidentMark | None = None
    message: str = ""
    worst_items: list[AlertItem] = []

    def describe(self) -> str:
        if self.kind == "baseline" and self.baseline is not None:
            return (
                f"{self.metric} {STAT_LABELS[self.stat]} {_num(self.value)} (n={self.n}) vs usual "
                f"{_num(self.baseline.value)} ({self.baseline.compare}, n={self.baseline.n}), p={_p(self.p_value)}"
            )
        return f"{self.metric} {self.stat} {_num(self.value)} {self.op} {_num(self.threshold)} (n={self.n})"


# -- the statistic of a rule ---------------------------------------------------------------------
@dataclass(frozen=True)
class StatSample:
    """A rule's statistic in one run (or pooled runs), with what its test needs.

    kind "rate": `bad` of `n` items on the bad side (failed, errored, or a flag raised);
    kind "mean": the scores' count, mean and sum of squared deviations, and which way is bad.
    """

    kind: Literal["rate", "mean"]
    n: int
    bad: int = 0
    mean: float = 0.0
    m2: float = 0.0
    higher_is_worse: bool = False

    def moments(self) -> RunningMoments:
        return RunningMoments(n=self.n, mean=self.mean, m2=self.m2)

    def p_worse_than(self, base: StatSample, *, between_runs: float = 0.0) -> float | None:
        """One-sided p-value that this sample is worse than `base` (None: not comparable)."""
        if self.kind != base.kind:
            return None
        if self.kind == "rate":
            return rate_worse_p_value(self.bad, self.n, base.bad, base.n, between_runs=between_runs)
        return mean_shift_p_value(
            self.moments(), base.moments(), higher_is_worse=self.higher_is_worse, between_runs=between_runs
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n": self.n,
            "bad": self.bad,
            "mean": self.mean,
            "m2": self.m2,
            "higher_is_worse": self.higher_is_worse,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StatSample:
        return cls(
            kind="mean" if data.get("kind") == "mean" else "rate",
            n=int(data.get("n") or 0),
            bad=int(data.get("bad") or 0),
            mean=float(data.get("mean") or 0.0),
            m2=float(data.get("m2") or 0.0),
            higher_is_worse=bool(data.get("higher_is_worse")),
        )


def summary_sample(rule: AlertRule, summary: MetricSummary) -> StatSample | None:
    """This run's sample for the rule, from its MetricSummary."""
    figures = MetricFigures.from_summary(summary.model_dump())
    if figures is None:
        return None
    if summary.mean is not None and summary.n and not figures.moments.n:  # one score: no spread
        figures.moments = RunningMoments(n=summary.n, mean=summary.mean, m2=0.0)
    return figures_sample(rule, figures, summary.direction, summary.score_type)


def figures_sample(rule: AlertRule, figures: MetricFigures, direction: str, score_type: str) -> StatSample | None:
    """The rule's sample from a metric's figures. A boolean metric's mean is a rate (the share of
    items with the flag, or without the property) and is tested as one: exact for rare events."""
    if rule.stat == "pass_rate":
        if not figures.judged:
            return None
        return StatSample("rate", n=figures.judged, bad=figures.judged - figures.passed)
    if rule.stat == "error_rate":
        attempted = figures.n + figures.errors
        return StatSample("rate", n=attempted, bad=figures.errors) if attempted else None
    moments = figures.moments
    if not moments.n:
        return None
    if score_type == "boolean":
        ones = round(moments.mean * moments.n)
        return StatSample("rate", n=moments.n, bad=ones if direction == "lower_is_better" else moments.n - ones)
    return StatSample(
        "mean", n=moments.n, mean=moments.mean, m2=moments.m2, higher_is_worse=direction == "lower_is_better"
    )


def shown_value(rule: AlertRule, sample: StatSample, direction: str) -> float:
    """The number a person reads: the pass rate, the error rate, or the mean (a flag's share)."""
    if sample.kind == "mean":
        return sample.mean
    share_bad = sample.bad / sample.n if sample.n else 0.0
    if rule.stat == "error_rate" or (rule.stat == "mean" and direction == "lower_is_better"):
        return share_bad
    return 1.0 - share_bad


# -- baselines -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BaselineRequest:
    """Which earlier runs a baseline rule uses: those ended before `before` (this run's window, or
    the window that opened the rule's incident, so a lasting drop does not become its own baseline)."""

    rule: AlertRule
    before_until: datetime
    before_since: datetime


@dataclass(frozen=True)
class Baseline:
    source: str
    runs: list[RunFigures]
    request: BaselineRequest


@dataclass
class HistoryReader:
    """Reads a monitor's history once per source and baseline end; a failing source is skipped."""

    run: RunContext
    versions: Mapping[str, str]
    settings: Settings
    langfuse_client: Any = None
    problems: list[str] = field(default_factory=list)
    _cache: dict[tuple[str, datetime, str], list[RunFigures]] = field(default_factory=dict)
    _failed: set[str] = field(default_factory=set)

    def sources(self) -> list[str]:
        config = self.run.config
        names = []
        if self.settings.database_url is not None and config.publish.postgres.enabled:
            names.append("postgres")
        if config.publish.langfuse.enabled:
            names.append("langfuse")
        names.append("runs folder")
        return names

    async def baseline(self, request: BaselineRequest) -> Baseline | None:
        """The first source holding earlier runs usable for the rule's statistic."""
        rule = request.rule
        for source in self.sources():
            if source in self._failed or (source == "langfuse" and rule.stat == "error_rate"):
                continue
            try:
                runs = await self._runs(source, request)
            except Exception as exc:  # a history source down is a warning: the next source answers
                self._failed.add(source)
                line = f"baseline alerts: could not read the {source} history ({type(exc).__name__}: {exc})"
                log.warning("%s", line)
                self.problems.append(line)
                continue
            usable = [r for r in runs if rule.metric in r.metrics]
            if usable:
                return Baseline(source=source, runs=usable, request=request)
        return None

    async def _runs(self, source: str, request: BaselineRequest) -> list[RunFigures]:
        compare = request.rule.compare
        assert compare is not None
        before = request.before_since if source == "langfuse" else request.before_until
        key = (source, before, compare.describe())
        if key not in self._cache:
            self._cache[key] = await self._read(source, before, compare.runs, compare.days)
        return self._cache[key]

    async def _read(self, source: str, before: datetime, runs: int | None, days: float | None) -> list[RunFigures]:
        run = self.run
        if source == "postgres":
            return await postgres_history(
                self.settings,
                run.monitor,
                self.versions,
                before=before,
                exclude_run_id=run.run_id,
                runs_limit=runs,
                days=days,
            )
        if source == "langfuse":
            span = timedelta(days=days) if days is not None else (runs or 1) * self._interval() * 1.5
            found = await langfuse_history(
                self._langfuse(),
                run.monitor,
                self.versions,
                since=before - span,
                until=before,
                exclude_run_id=run.run_id,
            )
            return select_runs(found, before=before, runs_limit=runs, days=None)
        return runs_folder_history(
            run.results_dir.parent, run.monitor, before=before, exclude_run_id=run.run_id, runs_limit=runs, days=days
        )

    def _interval(self) -> timedelta:
        """How far apart runs are: the schedule's interval, else the window's length."""
        schedule = self.run.config.schedule
        if schedule is not None and schedule.interval_minutes:
            return timedelta(minutes=schedule.interval_minutes)
        return self.run.window.until - self.run.window.since

    def _langfuse(self) -> Any:
        if self.langfuse_client is None:
            from shared.langfuse.client import make_client

            self.langfuse_client = make_client(self.settings)
        return self.langfuse_client


async def load_baselines(requests: Iterable[BaselineRequest], reader: HistoryReader) -> dict[str, Baseline]:
    """rule key -> its baseline, for the baseline rules that have one yet."""
    found: dict[str, Baseline] = {}
    for request in requests:
        baseline = await reader.baseline(request)
        if baseline is not None:
            found[request.rule.key] = baseline
    return found


def pooled_baseline(
    rule: AlertRule, runs: Sequence[RunFigures], direction: str, score_type: str
) -> tuple[StatSample, float, int] | None:
    """The baseline runs pooled into one sample, the between-run variance, and the runs used."""
    samples = [
        s for r in runs if (s := figures_sample(rule, r.metrics[rule.metric], direction, score_type)) is not None
    ]
    samples = [s for s in samples if s.n > 0]
    if not samples:
        return None
    if samples[0].kind == "rate":
        rate_runs = [(s.bad, s.n) for s in samples if s.kind == "rate"]
        pooled = StatSample("rate", n=sum(n for _, n in rate_runs), bad=sum(b for b, _ in rate_runs))
        return pooled, between_run_variance(rate_estimates(rate_runs)), len(rate_runs)
    moment_runs = [s.moments() for s in samples if s.kind == "mean"]
    merged = RunningMoments()
    for moments in moment_runs:
        merged.merge(moments)
    pooled = StatSample("mean", n=merged.n, mean=merged.mean, m2=merged.m2, higher_is_worse=samples[0].higher_is_worse)
    return pooled, between_run_variance(mean_estimates(moment_runs)), len(moment_runs)


# -- evaluation ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RuleOutcome:
    """One rule in one run. `state` unknown: too few items or no baseline yet (an incident stays as it is)."""

    rule: AlertRule
    state: Literal["firing", "quiet", "unknown"]
    reading: Alert | None = None  # the rule's numbers (firing or quiet)
    sample: StatSample | None = None  # this run's sample of the statistic
    between_runs: float = 0.0
    p_value: float | None = None  # baseline rules

    @property
    def alert(self) -> Alert | None:
        return self.reading if self.state == "firing" else None

    @property
    def cleared(self) -> bool:
        """Quiet and clearly so: an open incident resolves only then (no flapping around alpha).

        A baseline rule clears when the run is not worse than usual even at a lax level,
        p >= min(0.5, 10 * alpha); a threshold rule when its value is back across the threshold.
        """
        if self.state != "quiet":
            return False
        return self.p_value is None or self.p_value >= min(0.5, 10 * self.rule.alpha)


def evaluate_rules(
    config: AlertsConfig,
    metrics: Mapping[str, MetricSummary],
    rows: Iterable[ResultRow] = (),
    *,
    baselines: Mapping[str, Baseline] | None = None,
) -> list[RuleOutcome]:
    """Every rule's outcome in this run. A rule on a metric absent from the run is unknown (and logged)."""
    row_list = list(rows)
    outcomes = []
    for rule in config.rules:
        summary = metrics.get(rule.metric)
        if summary is None:
            log.warning("alert rule on metric '%s', which this run did not compute", rule.metric)
            outcomes.append(RuleOutcome(rule, "unknown"))
            continue
        if rule.compare is None:
            outcome = _threshold_outcome(rule, summary, row_list)
        else:
            outcome = _baseline_outcome(rule, summary, (baselines or {}).get(rule.key))
        if outcome.state == "firing" and outcome.reading is not None:
            reading = outcome.reading
            worst = _worst(rule, [r for r in row_list if r.metric_name == rule.metric], summary.direction)
            items = [_alert_item(row, config.trace_url_template) for row in worst[: config.worst_items]]
            outcome = dataclasses.replace(outcome, reading=reading.model_copy(update={"worst_items": items}))
        outcomes.append(outcome)
    return outcomes


def evaluate_alerts(
    config: AlertsConfig, metrics: Mapping[str, MetricSummary], result: EvaluationResult | Iterable[ResultRow]
) -> list[Alert]:
    """The rules this run breaches (baseline rules need `evaluate_rules` with their baselines)."""
    return [o.alert for o in evaluate_rules(config, metrics, result) if o.alert is not None]


def _threshold_outcome(rule: AlertRule, summary: MetricSummary, rows: list[ResultRow]) -> RuleOutcome:
    value, n = _statistic(rule, summary, rows)
    if value is None or n < rule.min_n:
        return RuleOutcome(rule, "unknown")
    assert rule.op is not None and rule.threshold is not None
    reading = Alert(
        metric=rule.metric,
        stat=rule.stat,
        rule=rule.key,
        op=rule.op,
        threshold=rule.threshold,
        value=round(value, 6),
        n=n,
        direction=summary.direction,
        alpha=rule.alpha,
    )
    reading.message = reading.describe()
    state: Literal["firing", "quiet"] = "firing" if OPS[rule.op](value, rule.threshold) else "quiet"
    return RuleOutcome(rule, state, reading, summary_sample(rule, summary))


def _baseline_outcome(rule: AlertRule, summary: MetricSummary, baseline: Baseline | None) -> RuleOutcome:
    sample = summary_sample(rule, summary)
    if sample is None or sample.n < rule.min_n or baseline is None:
        return RuleOutcome(rule, "unknown", sample=sample)
    pooled = pooled_baseline(rule, baseline.runs, summary.direction, summary.score_type)
    if pooled is None or pooled[0].n < rule.min_n or pooled[0].kind != sample.kind:
        return RuleOutcome(rule, "unknown", sample=sample)
    base, between_runs, runs_used = pooled
    p_value = sample.p_worse_than(base, between_runs=between_runs)
    if p_value is None:
        return RuleOutcome(rule, "unknown", sample=sample)
    assert rule.compare is not None
    reading = Alert(
        metric=rule.metric,
        stat=rule.stat,
        rule=rule.key,
        kind="baseline",
        value=round(shown_value(rule, sample, summary.direction), 6),
        n=sample.n,
        direction=summary.direction,
        baseline=BaselineInfo(
            source=baseline.source,
            compare=rule.compare.describe(),
            runs=runs_used,
            n=base.n,
            value=round(shown_value(rule, base, summary.direction), 6),
            before=iso(baseline.request.before_until),
        ),
        p_value=float(f"{p_value:.3g}"),
        alpha=rule.alpha,
    )
    reading.message = reading.describe()
    state: Literal["firing", "quiet"] = "firing" if p_value < rule.alpha else "quiet"
    return RuleOutcome(rule, state, reading, sample, between_runs, p_value)


def _statistic(rule: AlertRule, summary: MetricSummary, rows: list[ResultRow]) -> tuple[float | None, int]:
    """The rule's number and the sample it stands on (scored items; judged for pass_rate; scored +
    errors for error_rate)."""
    if rule.stat == "mean":
        return summary.mean, summary.n
    if rule.stat == "pass_rate":
        judged = summary.judged or sum(
            1
            for row in rows
            if row.metric_name == rule.metric and row.status is MetricStatus.OK and row.result.passed is not None
        )
        return summary.pass_rate, judged
    attempted = summary.n + summary.errors
    return (summary.errors / attempted if attempted else None), attempted


def _worst(rule: AlertRule, rows: list[ResultRow], direction: str) -> list[ResultRow]:
    """The items that pull the statistic the bad way, worst first, one row per item."""
    if rule.stat == "error_rate":
        picked = [row for row in rows if row.status is MetricStatus.ERROR]
    else:
        scored = [r for r in rows if r.status is MetricStatus.OK and _finite(r.result.score)]
        if rule.stat == "pass_rate":
            # failed items first, furthest from their threshold first
            scored = [r for r in scored if r.result.passed is False]
            picked = sorted(scored, key=lambda r: -abs((r.result.score or 0.0) - (r.result.threshold or 0.0)))
        else:
            # a threshold rule firing on low values ("mean < x") wants the lowest scores; a baseline
            # rule wants the scores on the metric's bad side
            low_is_bad = rule.op in ("<", "<=") if rule.op is not None else direction != "lower_is_better"
            picked = sorted(scored, key=lambda r: (r.result.score or 0.0) * (1 if low_is_bad else -1))
    seen: set[str] = set()
    unique = []
    for row in picked:
        if row.item.id not in seen:
            seen.add(row.item.id)
            unique.append(row)
    return unique


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _alert_item(row: ResultRow, template: str | None) -> AlertItem:
    return AlertItem(
        id=row.item.id,
        score=row.result.score,
        passed=row.result.passed,
        error=(row.result.error or "")[:200] or None,
        url=item_url(row, template),
    )


def item_url(row: ResultRow, template: str | None) -> str | None:
    """The trace link from `trace_url_template` (fields: trace_id, observation_id, session_id, id),
    else the item's own link (a Slack permalink), else None."""
    item = row.item
    url = template_url(
        template,
        item_id=item.id,
        trace_id=item.trace_id,
        observation_id=item.observation_id,
        session_id=item.session_id,
    )
    if url:
        return url
    for key in ("permalink", "url", "trace_url"):
        link = item.metadata.get(key)
        if isinstance(link, str) and link.startswith(("http://", "https://")):
            return link
    return None


def template_url(
    template: str | None,
    *,
    item_id: str,
    trace_id: str | None = None,
    observation_id: str | None = None,
    session_id: str | None = None,
) -> str | None:
    """`trace_url_template` filled in, or None when it needs a field this item does not have."""
    if not template:
        return None
    values = {
        "trace_id": trace_id,
        "observation_id": observation_id,
        "session_id": session_id,
        "id": item_id,
        "item_id": item_id,
    }
    try:
        needed = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError:
        return None
    if not needed or not all(values.get(name) for name in needed):
        return None
    return template.format(**{k: quote(str(v), safe="") for k, v in values.items() if v})


# -- Slack ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Notice:
    """One message-worthy change of a rule: it started firing, fired worse, or stopped."""

    kind: NoticeKind
    reading: Alert
    detail: str = ""  # e.g. "was 61% when reported", "open for 5 runs"


def alert_channel(run: RunContext, settings: Settings) -> str:
    channel = run.config.alerts.channel or settings.slack_alert_channel
    if not channel:
        raise ConfigError("alerts fired but no Slack channel is set (or SLACK_ALERT_CHANNEL)", field="alerts.channel")
    return channel


async def deliver_alerts(
    alerts: Sequence[Alert], run: RunContext, settings: Settings, slack: SlackService | None = None
) -> str | None:
    """Send the run's alerts as "opened" notices; on failure, the error line for the RunSummary."""
    notices = [Notice("opened", alert) for alert in alerts]
    return await deliver_notices(notices, run, settings, slack)


async def deliver_notices(
    notices: Sequence[Notice],
    run: RunContext,
    settings: Settings,
    slack: SlackService | None = None,
    *,
    channel: str | None = None,
    thread_ts: str | None = None,
) -> str | None:
    """Post the notices; on failure, log and return one line for the RunSummary's `errors`.

    An alert that fired and reached nobody must not look like a healthy run: the caller adds the
    line to the errors, so the run ends failed with exit code 1. The scores stand either way.
    """
    try:
        await send_notices(notices, run, settings, slack, channel=channel, thread_ts=thread_ts)
    except Exception as exc:
        firing = [n for n in notices if n.kind != "resolved"]
        rules = "; ".join(n.reading.describe() for n in notices)
        if firing:
            line = f"{len(firing)} alert(s) fired but were not delivered to Slack ({_reason(exc)}): {rules}"
        else:
            line = f"{len(notices)} resolved alert(s) were not announced in Slack ({_reason(exc)}): {rules}"
        log.error("%s", line)
        return line
    return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ConfigError):
        return exc.one_line()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def send_alerts(
    alerts: Sequence[Alert], run: RunContext, settings: Settings, slack: SlackService | None = None
) -> None:
    """Post one message for a breaching run; nothing for a healthy run or a dry run."""
    await send_notices([Notice("opened", alert) for alert in alerts], run, settings, slack)


async def send_notices(
    notices: Sequence[Notice],
    run: RunContext,
    settings: Settings,
    slack: SlackService | None = None,
    *,
    channel: str | None = None,
    thread_ts: str | None = None,
) -> None:
    """Post one message with every notice (in `thread_ts` when given); nothing when there are none.

    Raises ConfigError when no channel is configured, and the SlackService errors (TransientError
    after its retries, SlackError) when Slack refuses: the caller records them in the RunSummary.
    """
    if not notices or run.dry_run:
        return
    target = channel or alert_channel(run, settings)
    text, blocks = notice_message(notices, run)
    service = slack or SlackService(settings)
    try:
        await service.post_message(target, text, blocks, thread_ts=thread_ts)
    finally:
        if slack is None:
            await service.aclose()


def alert_message(alerts: Sequence[Alert], run: RunContext) -> tuple[str, list[dict[str, Any]]]:
    """The notification text and Block Kit blocks of one run's alerts (each as newly opened)."""
    return notice_message([Notice("opened", alert) for alert in alerts], run)


_NOTICE_HEADS = {
    "opened": ":rotating_light: Opened",
    "worsened": ":small_red_triangle_down: Worse",
    "resolved": ":white_check_mark: Resolved",
}


def notice_message(notices: Sequence[Notice], run: RunContext) -> tuple[str, list[dict[str, Any]]]:
    """The notification text and the Block Kit blocks of one run's notices."""
    window = f"{iso(run.window.since)} → {iso(run.window.until)}"
    counts = {kind: sum(1 for n in notices if n.kind == kind) for kind in ("opened", "worsened", "resolved")}
    said = ", ".join(f"{count} {kind}" for kind, count in counts.items() if count)
    firing = [n for n in notices if n.kind != "resolved"]
    text = f"evalmon alert: {run.monitor}: " + "; ".join(
        ("resolved: " if n.kind == "resolved" else "") + n.reading.describe() for n in notices
    )
    icon = ":rotating_light:" if firing else ":white_check_mark:"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{icon} {run.monitor}: alerts {said}"[:150]}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Monitor*\n{escape(run.monitor)}"},
                {"type": "mrkdwn", "text": f"*Window*\n{escape(window)}"},
            ],
        },
    ]
    for notice in notices[:MAX_ALERT_SECTIONS]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _notice_text(notice)}})
    if len(notices) > MAX_ALERT_SECTIONS:
        blocks.append(_context(f"... and {len(notices) - MAX_ALERT_SECTIONS} more (see the run summary)"))
    blocks.append(_context(f"run {code(run.run_id)} · config {run.config_hash} · evalmon {run.evalmon_version}"))
    return text[:3000], blocks


def _notice_text(notice: Notice) -> str:
    alert = notice.reading
    label = STAT_LABELS[alert.stat]
    if alert.kind == "baseline" and alert.baseline is not None:
        base = alert.baseline
        relation = "worse than usual" if notice.kind != "resolved" else "usual again"
        head = (
            f"*{escape(alert.metric)}* {label} is *{_num(alert.value)}* (n={alert.n}), {relation}: "
            f"{_num(base.value)} over the {escape(base.compare)} ({base.runs} runs, n={base.n}, {escape(base.source)}); "
            f"p = {_p(alert.p_value)}, alert below {_num(alert.alpha)}"
        )
    else:
        head = (
            f"*{escape(alert.metric)}* {label} is *{_num(alert.value)}*, "
            f"rule `{alert.op} {_num(alert.threshold)}` (n={alert.n})"
        )
    lines = [f"{_NOTICE_HEADS[notice.kind]} · {head}"]
    if notice.detail:
        lines.append(f"_{escape(notice.detail)}_")
    for item in alert.worst_items if notice.kind != "resolved" else []:
        link = f"<{item.url}|{escape(item.id)}>" if item.url else code(item.id)
        detail = f"error: {escape(item.error)}" if item.error else f"score {_num(item.score)}"
        lines.append(f"• {link} {detail}")
    out = "\n".join(lines)
    return out if len(out) <= SECTION_LIMIT else out[: SECTION_LIMIT - 1] + "…"


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2g}"
