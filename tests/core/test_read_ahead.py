"""read_ahead / map_ahead: overlap stages, keep order, surface errors, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from shared.monitoring.read_ahead import map_ahead, read_ahead


async def numbers(n: int, log: list[str], fail_at: int | None = None) -> AsyncIterator[int]:
    try:
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"broken at {i}")
            log.append(f"made {i}")
            yield i
    finally:
        log.append("closed")


def test_read_ahead_makes_the_next_value_while_the_consumer_works() -> None:
    async def go() -> list[str]:
        log: list[str] = []
        async for value in read_ahead(numbers(3, log), depth=1):
            await asyncio.sleep(0.01)  # the consumer is busy: the producer runs ahead meanwhile
            log.append(f"used {value}")
        return log

    log = asyncio.run(go())
    assert log.index("made 1") < log.index("used 0")
    assert [e for e in log if e.startswith("used")] == ["used 0", "used 1", "used 2"]
    assert "closed" in log


def test_read_ahead_raises_the_producers_error_where_the_consumer_reads() -> None:
    async def go() -> list[int]:
        seen: list[int] = []
        async for value in read_ahead(numbers(5, [], fail_at=2)):
            seen.append(value)
        return seen

    with pytest.raises(ValueError, match="broken at 2"):
        asyncio.run(go())


def test_stopping_early_closes_the_producer() -> None:
    async def go() -> list[str]:
        log: list[str] = []
        async with contextlib.aclosing(read_ahead(numbers(1000, log), depth=2)) as values:
            async for value in values:
                if value == 1:
                    break
        return log

    log = asyncio.run(go())
    assert log[-1] == "closed" and len(log) < 10


def test_map_ahead_keeps_input_order_with_calls_overlapping() -> None:
    async def go() -> tuple[list[int], int]:
        running = peak = 0

        async def slow_double(value: int) -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02 if value % 2 else 0.001)  # odd values finish last
            running -= 1
            return value * 2

        out = [v async for v in map_ahead(numbers(8, []), slow_double, ahead=3)]
        return out, peak

    out, peak = asyncio.run(go())
    assert out == [0, 2, 4, 6, 8, 10, 12, 14]
    assert 1 < peak <= 4


def test_map_ahead_surfaces_a_failed_call() -> None:
    async def fail_on_three(value: int) -> int:
        if value == 3:
            raise RuntimeError("no three")
        return value

    async def go() -> list[int]:
        return [v async for v in map_ahead(numbers(6, []), fail_on_three, ahead=2)]

    with pytest.raises(RuntimeError, match="no three"):
        asyncio.run(go())
