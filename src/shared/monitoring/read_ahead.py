"""Overlap the stages of a run: make the next thing while the current one is used.

`read_ahead` runs an async iterator in a background task a bounded number of values ahead of its
consumer (the next root page is requested while this one is scored). `map_ahead` applies an async
function to each value with up to `ahead` calls in flight, yielding results in input order (the
next chunk is hydrated while this one is scored). Both bound memory by their depth, re-raise
the first error where the consumer reads, and cancel their work when the consumer stops early.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
U = TypeVar("U")

_END = object()


async def read_ahead(source: AsyncIterator[T], depth: int = 1) -> AsyncGenerator[T, None]:
    """Yield `source`'s values, produced up to `depth` values ahead in a background task."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max(1, depth))

    async def pump() -> None:
        try:
            async for value in source:
                await queue.put(value)
        except Exception as exc:  # handed to the consumer, which raises it where it reads
            await queue.put(_Failure(exc))
            return
        await queue.put(_END)

    task = asyncio.create_task(pump())
    try:
        while True:
            value = await queue.get()
            if value is _END:
                return
            if isinstance(value, _Failure):
                raise value.error
            yield value
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        closer = getattr(source, "aclose", None)
        if closer is not None:
            await closer()


async def map_ahead(
    source: AsyncIterator[T], fn: Callable[[T], Awaitable[U]], ahead: int = 1
) -> AsyncGenerator[U, None]:
    """`fn(value)` for each value of `source`, up to `ahead` calls running at once, results in order."""
    pending: deque[asyncio.Future[U]] = deque()
    try:
        async for value in source:
            pending.append(asyncio.ensure_future(fn(value)))
            if len(pending) > max(0, ahead):
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    finally:
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class _Failure:
    def __init__(self, error: Exception) -> None:
        self.error = error
