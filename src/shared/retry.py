"""Retry policy shared by every stage: tenacity with exponential backoff, jitter and Retry-After.

One policy for every call to an external service (Langfuse, Postgres, Slack, the judge's retries
of transient failures): retry what `retry_on` calls transient, wait the server's Retry-After when
it sends one (capped at `maximum`), else back off exponentially with jitter, and stop after
`attempts` tries by re-raising the last error. `async_retrying` serves coroutines, `retrying`
the synchronous calls made in worker threads (the preflight checks).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from shared.errors import TransientError


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TransientError | TimeoutError)


def wait_retry_after(initial: float = 0.5, maximum: float = 30.0) -> Callable[[RetryCallState], float]:
    """Wait what the server asked for (Retry-After), else exponential backoff with jitter."""
    backoff = wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = getattr(exc, "retry_after", None)
        if isinstance(hinted, int | float) and hinted >= 0:
            return min(float(hinted), maximum)
        return backoff(state)

    return wait


def _policy(attempts: int, initial: float, maximum: float, retry_on: Callable[[BaseException], bool]) -> dict[str, Any]:
    return {
        "stop": stop_after_attempt(max(1, attempts)),
        "wait": wait_retry_after(initial, maximum),
        "retry": retry_if_exception(retry_on),
        "reraise": True,
    }


def async_retrying(
    attempts: int,
    *,
    initial: float = 0.5,
    maximum: float = 30.0,
    retry_on: Callable[[BaseException], bool] = is_transient,
) -> AsyncRetrying:
    """An AsyncRetrying that retries transient errors `attempts - 1` times, then re-raises."""
    return AsyncRetrying(**_policy(attempts, initial, maximum, retry_on))


def retrying(
    attempts: int,
    *,
    initial: float = 0.5,
    maximum: float = 30.0,
    retry_on: Callable[[BaseException], bool] = is_transient,
) -> Retrying:
    """`async_retrying` for synchronous code (it sleeps the calling thread between attempts)."""
    return Retrying(**_policy(attempts, initial, maximum, retry_on))


def first_delay(exc: BaseException, initial: float = 0.5, maximum: float = 30.0) -> float:
    """The wait before the first retry: the server's Retry-After, else `initial` with jitter."""
    hinted = getattr(exc, "retry_after", None)
    if isinstance(hinted, int | float) and hinted >= 0:
        return min(float(hinted), maximum)
    return initial * (1 + random.random())
