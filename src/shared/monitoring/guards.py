"""Extraction guards: warnings that a run's numbers may rest on a wrong extraction.

A metric can only judge what the extractor hands it. When the answer is read from the wrong
observation (a root span's `{"status": "completed"}`), the scores look clean and are wrong, and
nothing fails. These checks look at what was extracted and at how the metrics reacted, and say
so in the RunSummary's `warnings` (see docs/extraction.md, "Extraction guards"):

- a field a configured metric reads is empty on more than 20% of items;
- `actual_output` looks like a status object rather than text on more than 10% of items
  (these two and the skipped-rows check need at least 10 items or rows);
- the same `actual_output` on more than half of the items (at least 20 items);
- a metric gave the same score to 50 or more items, unless every one of them passed with the
  best score of its range (a healthy app has no PII and no refusals);
- more than 20% of a metric's rows skipped because a field it needs was missing (skips a metric
  makes by design, such as athena_refer_reason_given on non-refer decisions, do not count).

`ExtractionGuard` is an accumulator (`add_items`, `add_results`, `warnings`) so a run that
evaluates in chunks feeds it chunk by chunk; its memory does not grow with the number of items.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricStatus
from shared.evaluation.results import EvaluationResult
from shared.metrics._text import strip_invisible

MIN_ITEMS = 10  # below this, shares are too noisy to warn on (a quiet hour of 3 items)
EMPTY_SHARE = 0.20
STATUS_SHARE = 0.10
SAME_OUTPUT_SHARE = 0.50
SAME_OUTPUT_MIN_ITEMS = 20
CONSTANT_MIN_ROWS = 50
SKIPPED_SHARE = 0.20

ITEM_FIELDS = frozenset(DatasetItem.model_fields)
TEXT_FIELDS = frozenset({"actual_output", "query", "expected_output"})
# Metrics that read retrieved_content without requiring it (no documents is a verdict for them,
# not a reason to skip), so an extractor that finds no documents must still be reported.
DOCUMENT_READERS = frozenset({"citation_validity"})
# Keys of objects that report how a run went rather than what it answered.
STATUS_KEYS = frozenset(
    {
        "status",
        "state",
        "steps",
        "step",
        "success",
        "succeeded",
        "ok",
        "id",
        "run_id",
        "task_id",
        "job_id",
        "request_id",
        "code",
        "done",
        "completed",
        "finished",
        "error",
        "errors",
        "duration",
        "duration_ms",
        "elapsed",
        "elapsed_ms",
        "latency",
        "count",
        "num_steps",
        "iterations",
    }
)
PROSE_MIN_WORDS = 5
PLACEHOLDERS = frozenset({"null", "none", "nil", "undefined", "n/a", "{}", "[]", '""', "''"})
PREVIEW_CHARS = 60
HEAVY_HITTER_SLOTS = 1024


def fields_read(metric: BaseMetric) -> set[str]:
    """Item fields a metric reads.

    Its required fields; the item fields its `field:` / `fields:` params name (these replace
    the default text field); documents for citation checks; and the answer when it declares
    nothing at all, as answer checks do (refusal, non_empty) because an empty answer is a
    verdict for them rather than a reason to skip.
    """
    chosen = getattr(metric.params, "field", None)
    named = [chosen] if isinstance(chosen, str) else list(getattr(metric.params, "fields", None) or ())
    if named:
        fields = {f for f in metric.required_fields if f not in TEXT_FIELDS}
        fields.update(f for f in named if isinstance(f, str) and f in ITEM_FIELDS)
    else:
        fields = set(metric.required_fields) or {"actual_output"}
    if metric.key in DOCUMENT_READERS:
        fields.add("retrieved_content")
    return fields


def is_empty(value: Any) -> bool:
    """Nothing a metric can read: None, blank, a placeholder, `{"output": null}`, no documents."""
    if value is None:
        return True
    if isinstance(value, str):
        text = strip_invisible(value).strip()
        if not text or (len(text) <= 16 and text.casefold() in PLACEHOLDERS):
            return True
        if text[0] == "{" and text[-1] == "}":
            parsed = _json_object(text)
            return parsed is not None and all(is_empty(v) for v in parsed.values())
        return False
    if isinstance(value, Mapping):
        return all(is_empty(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(is_empty(v) for v in value)
    return False


def looks_like_status(value: str | None) -> bool:
    """A JSON object reporting how a run went (`{"status": "completed", "steps": 4}`), no prose."""
    if not value:
        return False
    text = value.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return False
    parsed = _json_object(text)
    if not parsed or not any(str(k).casefold() in STATUS_KEYS for k in parsed):
        return False
    return not _has_prose(parsed)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def is_prose(text: str) -> bool:
    """Sentences rather than a code, id or label: at least PROSE_MIN_WORDS words with letters."""
    return sum(1 for word in text.split()[:50] if any(c.isalpha() for c in word)) >= PROSE_MIN_WORDS


def _has_prose(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return is_prose(value)
    if depth >= 4:
        return False
    if isinstance(value, Mapping):
        return any(_has_prose(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_prose(v, depth + 1) for v in value)
    return False


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """One line, at most `limit` characters (for warnings and `evalmon inspect`)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


class HeavyHitters:
    """Misra-Gries counts of the most frequent values in O(slots) memory, amortised O(1) per value.

    Exact while there are at most `slots` distinct values (typical samples). Past that, a kept
    count never exceeds the true count (`exact` turns False), so "more than half" read from it
    is never a false alarm; it can miss a value only within n/slots of the threshold.
    """

    def __init__(self, slots: int = HEAVY_HITTER_SLOTS) -> None:
        self.slots = slots
        self.counts: dict[bytes, int] = {}
        self.examples: dict[bytes, str] = {}
        self.exact = True

    def add(self, text: str) -> None:
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).digest()
        if key in self.counts:
            self.counts[key] += 1
        elif len(self.counts) < self.slots:
            self.counts[key] = 1
            self.examples[key] = preview(text)
        else:
            self.exact = False
            for other in list(self.counts):
                self.counts[other] -= 1
                if self.counts[other] == 0:
                    del self.counts[other]
                    del self.examples[other]

    def top(self) -> tuple[str, int] | None:
        if not self.counts:
            return None
        key = max(self.counts, key=self.counts.__getitem__)
        return self.examples[key], self.counts[key]


@dataclass
class _MetricTally:
    """What one metric did over the run, kept as a few numbers."""

    rows: int = 0  # ok + error + skipped (deferred rows were not attempted)
    skipped_missing: int = 0
    missing_fields: set[str] = field(default_factory=set)
    scored: int = 0
    first_score: float | None = None
    constant: bool = True
    all_passed_at_best: bool = True


class ExtractionGuard:
    """Accumulates items and results chunk by chunk; `warnings()` reads the totals so far."""

    def __init__(self, metrics: Sequence[BaseMetric]) -> None:
        self.metrics = {m.name: m for m in metrics}
        readers: dict[str, list[str]] = {}
        for m in metrics:
            for name in sorted(fields_read(m)):
                readers.setdefault(name, []).append(m.name)
        self.readers = readers  # field -> metric names that read it
        self.items = 0
        self.empty: dict[str, int] = dict.fromkeys(readers, 0)
        self.status_like = 0
        self.status_example: str | None = None
        self.outputs = HeavyHitters()
        self.tallies: dict[str, _MetricTally] = {}

    # -- accumulate ---------------------------------------------------------------------
    def add_items(self, items: Iterable[DatasetItem]) -> None:
        for item in items:
            self.items += 1
            for name in self.empty:
                if is_empty(getattr(item, name, None)):
                    self.empty[name] += 1
            output = item.actual_output
            if output is None or is_empty(output):
                continue
            self.outputs.add(output.strip())
            if looks_like_status(output):
                self.status_like += 1
                self.status_example = self.status_example or preview(output)

    def add_results(self, result: EvaluationResult) -> None:
        for row in result:
            status = row.result.status
            if status is MetricStatus.DEFERRED:
                continue
            tally = self.tallies.setdefault(row.metric_name, _MetricTally())
            tally.rows += 1
            if status is MetricStatus.SKIPPED:
                missing = self._missing(row.metric_name, row.item, row.result.explanation)
                if missing:
                    tally.skipped_missing += 1
                    tally.missing_fields.update(missing)
            elif status is MetricStatus.OK and row.result.score is not None:
                self._tally_score(tally, row.metric_name, row.result.score, row.result.passed)

    def _missing(self, metric_name: str, item: DatasetItem, explanation: str) -> list[str]:
        metric = self.metrics.get(metric_name)
        if metric is not None:
            return metric.missing_fields(item)
        prefix = "missing required field(s): "  # the runner's wording, for metrics we were not given
        return explanation[len(prefix) :].split(", ") if explanation.startswith(prefix) else []

    def _tally_score(self, tally: _MetricTally, metric_name: str, score: float, passed: bool | None) -> None:
        tally.scored += 1
        if tally.first_score is None:
            tally.first_score = score
        elif score != tally.first_score:
            tally.constant = False
        metric = self.metrics.get(metric_name)
        best = None
        if metric is not None:
            low, high = metric.score_range
            best = high if metric.higher_is_better else low
        if passed is not True or score != best:
            tally.all_passed_at_best = False

    # -- report -------------------------------------------------------------------------
    def warnings(self) -> list[str]:
        """Item-level warnings, then metric-level ones; empty when the run looks healthy."""
        found: list[str] = []
        empty_fields: set[str] = set()
        enough = self.items >= MIN_ITEMS
        for name, count in self.empty.items():
            if enough and count / self.items > EMPTY_SHARE:
                empty_fields.add(name)
                found.append(self._empty_warning(name, count))
        if enough and self.status_like / self.items > STATUS_SHARE:
            found.append(
                f"actual_output looks like a status object, not an answer, on {self.status_like} of {self.items} "
                f"items ({self.status_like / self.items:.0%}), e.g. {self.status_example}: the answer is probably "
                "on another observation (see `evalmon inspect --propose`)"
            )
        top = self.outputs.top()
        if self.items >= SAME_OUTPUT_MIN_ITEMS and top and top[1] / self.items > SAME_OUTPUT_SHARE:
            found.append(
                f"the same actual_output on {'' if self.outputs.exact else 'at least '}{top[1]} of {self.items} "
                f"items ({top[1] / self.items:.0%}): "
                f"{top[0]!r}; the extractor may be reading a fixed value rather than each answer"
            )
        for name, tally in self.tallies.items():
            if tally.scored >= CONSTANT_MIN_ROWS and tally.constant and not tally.all_passed_at_best:
                found.append(
                    f"{name} gave every one of {tally.scored} items the score {tally.first_score:g}: "
                    "a metric that never varies is probably not reading what you expect"
                )
            if tally.rows >= MIN_ITEMS and tally.skipped_missing / tally.rows > SKIPPED_SHARE:
                if tally.missing_fields <= empty_fields:
                    continue  # already said in the empty-field warning, which names this metric
                missing = ", ".join(sorted(tally.missing_fields))
                found.append(
                    f"{name} skipped {tally.skipped_missing} of {tally.rows} rows "
                    f"({tally.skipped_missing / tally.rows:.0%}) for missing {missing}: its pass rate leaves them out"
                )
        return found

    def _empty_warning(self, name: str, count: int) -> str:
        skipping = [m for m, t in self.tallies.items() if name in t.missing_fields]
        readers = ", ".join(self.readers.get(name, []))
        text = (
            f"{name} is empty on {count} of {self.items} items ({count / self.items:.0%}); "
            f"read by {readers}: check what the extractor reads with `evalmon inspect`"
        )
        if skipping:
            text += f" ({', '.join(skipping)} skipped them, so their pass rates leave them out)"
        return text


def item_warnings(items: Iterable[DatasetItem], metrics: Sequence[BaseMetric]) -> list[str]:
    """The item-level warnings alone (`evalmon validate --sample`, `evalmon inspect`)."""
    guard = ExtractionGuard(metrics)
    guard.add_items(items)
    return guard.warnings()
