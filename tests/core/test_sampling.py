from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.evaluation.item import DatasetItem
from shared.evaluation.runner import PendingItem
from shared.monitoring.config import SamplingConfig
from shared.monitoring.sampling import make_sampler

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def pending(n: int, *, shuffle: bool = False) -> list[PendingItem]:
    order = list(range(n))
    if shuffle:
        order = order[1::2] + order[::2]
    return [
        PendingItem(DatasetItem(id=f"i{k}", source_timestamp=T0 + timedelta(minutes=k), metadata={"kind": k % 3}))
        for k in order
    ]


def sample(config: SamplingConfig, values: list[PendingItem]) -> list[str]:
    sampler = make_sampler(config)
    for value in values:
        sampler.offer(value)
    return [p.item.id for p in sampler.result()]


def test_random_is_seeded_bounded_and_uniformish() -> None:
    cfg = SamplingConfig(strategy="random", n=10, seed=5)
    first = sample(cfg, pending(1000))
    assert first == sample(cfg, pending(1000)) and len(first) == 10 and len(set(first)) == 10
    assert first != sample(cfg.model_copy(update={"seed": 6}), pending(1000))
    late = sum(int(i[1:]) >= 500 for i in first)
    assert 1 <= late <= 9  # reservoir reaches the whole stream, not just its head


def test_most_recent_and_oldest_use_timestamps_not_order() -> None:
    values = pending(50, shuffle=True)
    assert sample(SamplingConfig(strategy="most_recent", n=3), values) == ["i49", "i48", "i47"]
    assert sample(SamplingConfig(strategy="oldest", n=3), values) == ["i0", "i1", "i2"]


def test_rate_is_stable_across_runs_and_subsets() -> None:
    cfg = SamplingConfig(strategy="rate", rate=0.3, seed=1)
    full = set(sample(cfg, pending(1000)))
    assert 200 < len(full) < 400
    subset = set(sample(cfg, pending(1000)[:500]))
    assert subset == {i for i in full if int(i[1:]) < 500}


def test_stratified_keeps_minimum_per_stratum() -> None:
    values = pending(300)
    rare = PendingItem(DatasetItem(id="rare", metadata={"kind": "rare"}))
    got = sample(SamplingConfig(strategy="stratified", n=12, field="metadata.kind", min_per_stratum=1), [*values, rare])
    assert "rare" in got
    assert 12 <= len(got) <= 14
