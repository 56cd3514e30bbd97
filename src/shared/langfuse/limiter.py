"""`AdaptiveLimiter`: at most `limit` calls at once, halved by each 429, grown back by successes.

Langfuse Cloud rate-limits reads. A fixed concurrency either wastes a quiet server or keeps
hammering a busy one; this one backs off multiplicatively when told "too many requests" (the
retry itself waits the server's Retry-After, see `shared.langfuse.client.call_api`) and
climbs back one slot per `limit` successful calls, never above `maximum`.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class AdaptiveLimiter:
    """An async context manager bounding concurrent calls. Bound to the event loop that first uses it."""

    def __init__(self, maximum: int) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.rate_limited_count = 0
        self._active = 0
        self._successes = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> AdaptiveLimiter:
        async with self._changed:
            await self._changed.wait_for(lambda: self._active < self.limit)
            self._active += 1
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        async with self._changed:
            self._active -= 1
            if exc_type is None:
                self._successes += 1
                if self._successes >= self.limit and self.limit < self.maximum:
                    self.limit += 1
                    self._successes = 0
            self._changed.notify_all()

    def rate_limited(self) -> None:
        """A 429 arrived: halve the limit (calls already running finish; no new one starts above it)."""
        self.rate_limited_count += 1
        self.limit = max(1, self.limit // 2)
        self._successes = 0
