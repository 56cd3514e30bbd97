"""Client-side protection for the judge: a rate limiter and a circuit breaker.

The limiter keeps a run under the provider's requests/min and tokens/min quotas before the
provider has to say 429 (429s still happen and are retried by the SDK, honouring Retry-After).
It is shared by every judge metric of a run that uses the same model, since quotas are per model.

The breaker stops a metric from calling a judge that keeps failing (down, misconfigured, or
answering garbage): after N consecutive failures, every remaining item of the run is deferred
instead of burning time and money; a later run tries again.
"""

from __future__ import annotations

import asyncio
import time


class _Bucket:
    """A token bucket refilled continuously at `per_minute / 60` per second."""

    def __init__(self, per_minute: float, burst_s: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self.updated = time.monotonic()

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available (an amount above capacity waits for a full bucket)."""
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate


class RateLimiter:
    """Requests/min and tokens/min, smooth (burst of `burst_s` seconds of quota), FIFO for waiters.

    The burst is small on purpose: providers enforce per-minute quotas over shorter windows, and
    evenly spaced calls keep answers from arriving in waves that the event loop must then queue.

    `acquire(tokens)` takes one request and an estimate of the call's tokens; `adjust(delta)`
    corrects the token bucket once the real usage is known (it may go negative: later calls wait).
    """

    def __init__(
        self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None, *, burst_s: float = 0.1
    ) -> None:
        self.burst_s = burst_s
        self._requests = _Bucket(requests_per_minute, burst_s) if requests_per_minute else None
        self._tokens = _Bucket(tokens_per_minute, burst_s) if tokens_per_minute else None
        self._lock = asyncio.Lock()
        self.waited_s = 0.0

    @property
    def requests_per_minute(self) -> float | None:
        return self._requests.rate * 60 if self._requests else None

    @property
    def tokens_per_minute(self) -> float | None:
        return self._tokens.rate * 60 if self._tokens else None

    def tighten(self, requests_per_minute: float | None, tokens_per_minute: float | None) -> None:
        """Several metrics share one limiter: the strictest configured quota wins."""
        if requests_per_minute and (self._requests is None or requests_per_minute / 60 < self._requests.rate):
            self._requests = _Bucket(requests_per_minute, self.burst_s)
        if tokens_per_minute and (self._tokens is None or tokens_per_minute / 60 < self._tokens.rate):
            self._tokens = _Bucket(tokens_per_minute, self.burst_s)

    async def acquire(self, tokens: int = 0) -> None:
        buckets = [(b, amount) for b, amount in ((self._requests, 1.0), (self._tokens, float(tokens))) if b]
        if not buckets:
            return
        async with self._lock:  # held while sleeping: waiters are served in arrival order
            while True:
                now = time.monotonic()
                for bucket, _ in buckets:
                    bucket.refill(now)
                wait = max(bucket.wait_for(amount) for bucket, amount in buckets)
                if wait <= 0:
                    for bucket, amount in buckets:
                        bucket.level -= amount
                    return
                self.waited_s += wait
                await asyncio.sleep(wait)

    def adjust(self, token_delta: int) -> None:
        """Charge (positive) or refund (negative) tokens once a call's real usage is known."""
        if self._tokens is not None and token_delta:
            self._tokens.level = min(self._tokens.capacity, self._tokens.level - token_delta)


class CircuitBreaker:
    """Opens after `threshold` consecutive failures and stays open for the rest of the run."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.consecutive_failures = 0
        self.opened = False
        self.last_error: str | None = None

    @property
    def is_open(self) -> bool:
        return self.opened

    def record_success(self) -> None:
        if not self.opened:
            self.consecutive_failures = 0

    def record_failure(self, error: str) -> None:
        self.consecutive_failures += 1
        self.last_error = error
        if self.threshold > 0 and self.consecutive_failures >= self.threshold:
            self.opened = True
