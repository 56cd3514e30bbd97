from __future__ import annotations

import asyncio

from shared.errors import MetricError, TransientError
from shared.evaluation import BaseMetric, DatasetItem, EvaluationConfig, MetricResult, MetricStatus, evaluate


class Probe(BaseMetric):
    key = "probe"
    required_fields = ("actual_output",)
    default_threshold = 0.5

    def __init__(self, behaviour: str = "ok", fail_times: int = 0) -> None:
        super().__init__(name=f"probe_{behaviour}")
        self.behaviour = behaviour
        self.fail_times = fail_times
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0

    async def execute(self, item: DatasetItem) -> MetricResult:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            if self.behaviour == "transient" and self.calls <= self.fail_times:
                raise TransientError("429", retry_after=0)
            if self.behaviour == "boom" and item.id == "1":
                raise RuntimeError("kaboom")
            if self.behaviour == "bad":
                raise MetricError("unparseable", signals={"raw": "{nope"})
            if self.behaviour == "slow":
                await asyncio.sleep(5)
            return self.result(len(item.actual_output or "") / 10)
        finally:
            self.in_flight -= 1


def items(n: int) -> list[DatasetItem]:
    return [DatasetItem(id=str(i), actual_output="x" * i) for i in range(n)]


def test_concurrency_is_bounded_and_rows_keep_order() -> None:
    probe = Probe()
    result = asyncio.run(evaluate(items(20), [probe], EvaluationConfig(concurrency=3)))
    assert probe.max_in_flight == 3
    assert [r.item.id for r in result] == [str(i) for i in range(20)]
    row = result.rows[7]
    assert row.result.score == 0.7 and row.result.passed is True and row.result.threshold == 0.5


def test_failures_become_rows_and_never_stop_the_rest() -> None:
    boom, bad, slow = Probe("boom"), Probe("bad"), Probe("slow")
    cfg = EvaluationConfig(timeout_s=0.2, retries=0)
    result = asyncio.run(evaluate(items(3), [boom, bad, slow], cfg))
    by = {(r.item.id, r.metric_name): r.result for r in result}
    assert by[("1", "probe_boom")].status is MetricStatus.ERROR and "kaboom" in (by[("1", "probe_boom")].error or "")
    assert by[("2", "probe_boom")].status is MetricStatus.OK
    assert by[("1", "probe_bad")].signals == {"raw": "{nope"} and by[("1", "probe_bad")].score is None
    assert "timed out" in (by[("1", "probe_slow")].error or "")
    assert by[("0", "probe_boom")].status is MetricStatus.SKIPPED  # empty actual_output: not applicable
    summary = result.summary()["probe_bad"]
    assert summary.errors == 2 and summary.skipped == 1 and summary.n == 0 and summary.mean is None


def test_transient_errors_are_retried() -> None:
    probe = Probe("transient", fail_times=2)
    result = asyncio.run(evaluate(items(2)[1:], [probe], EvaluationConfig(retries=2)))
    assert result.rows[0].result.status is MetricStatus.OK and probe.calls == 3


def test_dataframe_has_one_row_per_item_and_metric() -> None:
    result = asyncio.run(evaluate(items(4), [Probe(), Probe("bad")], EvaluationConfig()))
    frame = result.to_dataframe()
    assert len(frame) == 8
    assert {"id", "metric_name", "metric_score", "passed", "error", "metric_version"} <= set(frame.columns)
