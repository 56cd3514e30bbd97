"""Retry policy shared by every stage: tenacity with exponential backoff, jitter and Retry-After."""

from __future__ import annotations

import random
from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
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


def async_retrying(
    attempts: int,
    *,
    initial: float = 0.5,
    maximum: float = 30.0,
    retry_on: Callable[[BaseException], bool] = is_transient,
) -> AsyncRetrying:
    """An AsyncRetrying that retries transient errors `attempts - 1` times, then re-raises."""
    return AsyncRetrying(
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_retry_after(initial, maximum),
        retry=retry_if_exception(retry_on),
        reraise=True,
    )


def first_delay(exc: BaseException, initial: float = 0.5, maximum: float = 30.0) -> float:
    """The wait before the first retry: the server's Retry-After, else `initial` with jitter."""
    hinted = getattr(exc, "retry_after", None)
    if isinstance(hinted, int | float) and hinted >= 0:
        return min(float(hinted), maximum)
    return initial * (1 + random.random())
