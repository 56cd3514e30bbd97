"""What a run report shows, gathered chunk by chunk while the run streams its results.

The collector keeps per metric a few numbers (moments, pass counts), a bounded sample of scores
for the distribution chart and the few worst items, so its memory does not grow with the window.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from shared.evaluation.metric import MetricStatus
from shared.evaluation.results import ResultRow
from shared.reporting.stats import RunningMoments, wilson_interval

Direction = Literal["higher_is_better", "lower_is_better"]
SCORE_SAMPLE = 5000  # scores kept per metric for the distribution chart
WORST_ITEMS = 5
PREVIEW_CHARS = 160


@dataclass(frozen=True)
class WorstItem:
    """A failing (or lowest-scoring) item, with what a reader needs to open its trace."""

    badness: float
    item_id: str
    trace_id: str | None
    score: float | None
    passed: bool | None
    explanation: str
    preview: str


@dataclass
class MetricTally:
    """Running figures of one metric over the rows seen so far."""

    direction: Direction = "higher_is_better"
    moments: RunningMoments = field(default_factory=RunningMoments)
    judged: int = 0
    passed: int = 0
    errors: int = 0
    skipped: int = 0
    scores: list[float] = field(default_factory=list)
    _seen_scores: int = 0
    _worst: list[tuple[float, int, WorstItem]] = field(default_factory=list)
    _counter: int = 0

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.judged if self.judged else None

    def pass_interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.passed, self.judged)

    @property
    def worst(self) -> list[WorstItem]:
        return [entry for _, _, entry in sorted(self._worst, key=lambda e: (-e[0], e[1]))]

    def add(self, row: ResultRow, rng: random.Random) -> None:
        result = row.result
        if result.status is MetricStatus.ERROR:
            self.errors += 1
            return
        if result.status is MetricStatus.SKIPPED:
            self.skipped += 1
            return
        if result.status is not MetricStatus.OK:
            return
        if result.passed is not None:
            self.judged += 1
            self.passed += bool(result.passed)
        if result.score is not None and result.score == result.score:  # NaN is not a score
            self.moments.add(result.score)
            self._sample(result.score, rng)
        self._consider(row)

    def _sample(self, score: float, rng: random.Random) -> None:
        """Reservoir sample of scores: an unbiased distribution in bounded memory."""
        self._seen_scores += 1
        if len(self.scores) < SCORE_SAMPLE:
            self.scores.append(score)
            return
        slot = rng.randrange(self._seen_scores)
        if slot < SCORE_SAMPLE:
            self.scores[slot] = score

    def _consider(self, row: ResultRow) -> None:
        """Keep the WORST_ITEMS worst: failed items, or the lowest scores of a metric with no verdict."""
        result = row.result
        if result.passed is True:
            return
        score = result.score
        badness = (10.0 if result.passed is False else 0.0) + (
            0.0 if score is None else -score if self.direction == "higher_is_better" else score
        )
        if len(self._worst) >= WORST_ITEMS and badness <= self._worst[0][0]:
            return
        output = row.item.actual_output or ""
        entry = WorstItem(
            badness=badness,
            item_id=row.item.id,
            trace_id=row.item.trace_id,
            score=score,
            passed=result.passed,
            explanation=" ".join((result.explanation or "").split())[:PREVIEW_CHARS],
            preview=" ".join(output.split())[:PREVIEW_CHARS],
        )
        self._counter += 1
        heapq.heappush(self._worst, (badness, self._counter, entry))
        if len(self._worst) > WORST_ITEMS:
            heapq.heappop(self._worst)


class ReportCollector:
    """Feed it each chunk's result rows; read per-metric tallies for the report at the end."""

    def __init__(self, directions: Mapping[str, str] | None = None, *, seed: int = 0) -> None:
        self.directions: dict[str, Direction] = {
            name: "lower_is_better" if d == "lower_is_better" else "higher_is_better"
            for name, d in (directions or {}).items()
        }
        self.tallies: dict[str, MetricTally] = {}
        self._rng = random.Random(seed)

    def add(self, rows: Iterable[ResultRow]) -> None:
        for row in rows:
            tally = self.tallies.get(row.metric_name)
            if tally is None:
                tally = MetricTally(direction=self.directions.get(row.metric_name, "higher_is_better"))
                self.tallies[row.metric_name] = tally
            tally.add(row, self._rng)
