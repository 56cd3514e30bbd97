"""One Langfuse client from settings, a fail-fast connection check, and the call wrapper.

Every Langfuse call in evalmon goes through the official SDK (`langfuse.Langfuse(...).api`).
SDK calls are synchronous; `call_api` runs one in a worker thread and retries what is worth
retrying (429, 5xx, timeouts, dropped connections) with backoff and jitter, honouring the
server's Retry-After. The SDK's own retry loop is switched off per request
(`max_retries=0`) so there is exactly one retry policy, and its attempts are countable.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from langfuse import Langfuse
from langfuse.api.core import ApiError

from shared.errors import ConfigError, SourceError, TransientError
from shared.retry import async_retrying, retrying
from shared.settings import Settings

T = TypeVar("T")

# Per-request options handed to every SDK call: our retry policy replaces the SDK's.
NO_SDK_RETRIES: dict[str, Any] = {"max_retries": 0}


def make_client(settings: Settings, *, tracing: bool = False) -> Langfuse:
    """A Langfuse client for these settings.

    Raises ConfigError when the keys are missing. `tracing=False` (the default) keeps the SDK
    from starting an OpenTelemetry exporter we never use; evalmon writes scores through the API
    client, not through the SDK's score queue (which drops failed batches silently).
    """
    public_key = settings.langfuse_public_key
    secret = settings.langfuse_secret_key.get_secret_value() if settings.langfuse_secret_key else None
    if not public_key or not secret:
        raise ConfigError(
            "Langfuse credentials are missing: set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY",
            field="LANGFUSE_PUBLIC_KEY",
        )
    base_url = settings.langfuse_base_url.rstrip("/")
    _drop_stale_resources(public_key, secret, base_url)
    return Langfuse(
        public_key=public_key,
        secret_key=secret,
        base_url=base_url,
        timeout=max(1, math.ceil(settings.langfuse_timeout_s)),
        tracing_enabled=tracing,
    )


def _drop_stale_resources(public_key: str, secret: str, base_url: str) -> None:
    """The SDK keeps one resource manager per public key for the whole process.

    A second client with the same key but another host or secret would silently reuse the
    first one's HTTP client (and talk to the old host). Drop the stale one so settings win.
    """
    from langfuse._client.resource_manager import LangfuseResourceManager

    existing = LangfuseResourceManager._instances.get(public_key)
    if existing is None:
        return
    if getattr(existing, "base_url", base_url) == base_url and getattr(existing, "secret_key", secret) == secret:
        return
    with LangfuseResourceManager._lock:
        LangfuseResourceManager._instances.pop(public_key, None)
    existing.shutdown()


def check_connection(client: Langfuse, *, attempts: int = 5, initial_wait: float = 0.5, max_wait: float = 8.0) -> None:
    """Fail before any work: ConfigError (exit 2) on rejected credentials, SourceError (exit 1) when
    Langfuse stays unavailable.

    Uses `GET /api/public/projects` (what `Langfuse.auth_check` calls), through the same retry
    policy as every other call: a 429, a 5xx, a timeout or a dropped connection is retried
    (honouring Retry-After), so one blip does not fail an hourly run; 401/403 is never retried.
    Synchronous (callers run it in a worker thread), hence tenacity's `Retrying`.
    """
    host = _host_of(client)
    stats = CallStats()
    try:
        projects = call_api_sync(
            client.api.projects.get, attempts=attempts, initial_wait=initial_wait, max_wait=max_wait, stats=stats
        )
    except ApiError as exc:
        if exc.status_code in (401, 403):
            raise ConfigError(
                f"Langfuse at {host} rejected the credentials (HTTP {exc.status_code}): "
                "check LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY",
                field="LANGFUSE_SECRET_KEY",
            ) from None
        raise SourceError(f"Langfuse at {host} answered HTTP {exc.status_code} to the connection check") from None
    except TransientError as exc:
        cause = exc.__cause__
        if isinstance(cause, httpx.TransportError) and not isinstance(cause, httpx.TimeoutException):
            raise SourceError(
                f"Langfuse at {host} is unreachable after {stats.requests} attempt(s) ({type(cause).__name__}): "
                "check LANGFUSE_BASE_URL"
            ) from None
        raise SourceError(
            f"Langfuse at {host} is unavailable after {stats.requests} attempt(s) ({exc}): try again later"
        ) from None
    if not projects.data:
        raise ConfigError(f"Langfuse at {host} knows no project for these keys", field="LANGFUSE_PUBLIC_KEY")


def _host_of(client: Langfuse) -> str:
    return str(getattr(client, "_base_url", "") or "Langfuse")


def retry_after_seconds(headers: dict[str, str] | None) -> float | None:
    """Retry-After as seconds (delta-seconds or HTTP date), or None when absent or unreadable."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def as_transient(exc: BaseException) -> BaseException:
    """Translate SDK/httpx failures worth retrying into TransientError; others pass through."""
    if isinstance(exc, ApiError):
        status = exc.status_code
        if status is None or status == 429 or status == 408 or status >= 500:
            return TransientError(f"HTTP {status}", retry_after=retry_after_seconds(exc.headers))
        return exc
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return TransientError(f"{type(exc).__name__}: {exc}")
    return exc


class CallStats:
    """Counts HTTP attempts (retries included), so sources and benchmarks can report them."""

    def __init__(self) -> None:
        self.requests = 0
        self.retries = 0


async def call_api(
    fn: Callable[..., T],
    *args: Any,
    attempts: int = 5,
    initial_wait: float = 0.5,
    max_wait: float = 30.0,
    stats: CallStats | None = None,
    **kwargs: Any,
) -> T:
    """Run one synchronous SDK call in a thread, with evalmon's retry policy.

    Transient failures are retried `attempts - 1` times; the last one is re-raised as
    TransientError. Non-transient API errors (400, 401, 404) are raised at once, unchanged.
    """
    kwargs.setdefault("request_options", NO_SDK_RETRIES)
    first = True
    async for attempt in async_retrying(attempts, initial=initial_wait, maximum=max_wait):
        with attempt:
            if stats is not None:
                stats.requests += 1
                if not first:
                    stats.retries += 1
            first = False
            try:
                return await asyncio.to_thread(fn, *args, **kwargs)
            except Exception as exc:  # translate, then let tenacity decide
                translated = as_transient(exc)
                if translated is exc:
                    raise
                raise translated from exc
    raise AssertionError("unreachable: async_retrying re-raises")  # pragma: no cover


def call_api_sync(
    fn: Callable[..., T],
    *args: Any,
    attempts: int = 5,
    initial_wait: float = 0.5,
    max_wait: float = 30.0,
    stats: CallStats | None = None,
    **kwargs: Any,
) -> T:
    """`call_api` for code already running in a worker thread (the preflight): same policy, same errors."""
    kwargs.setdefault("request_options", NO_SDK_RETRIES)
    for attempt in retrying(attempts, initial=initial_wait, maximum=max_wait):
        with attempt:
            if stats is not None:
                stats.requests += 1
                if attempt.retry_state.attempt_number > 1:
                    stats.retries += 1
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # translate, then let tenacity decide
                translated = as_transient(exc)
                if translated is exc:
                    raise
                raise translated from exc
    raise AssertionError("unreachable: retrying re-raises")  # pragma: no cover
