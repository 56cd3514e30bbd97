"""The Langfuse prompt webhook: verify, deduplicate, invalidate everywhere, then notify in the background.

Langfuse calls `POST /webhooks/langfuse` when a prompt version is created, updated (labels/tags) or
deleted. The body is a `prompt-version` event; the header `x-langfuse-signature: t=<unix>,v1=<hex>`
carries HMAC-SHA256(key = the whole webhook secret, message = "<t>.<raw body>").

DATAFLOW of one delivery (`handle`):
    body (streamed, capped at max_body_bytes)          -> 413 if larger
    ... read within body_timeout_s                      -> 408 if the client stalls (connection closed)
    ... client gone before the end of the body          -> one log line, nothing done
    signature header -> HMAC, constant-time compare     -> 401 if missing / malformed / wrong
    timestamp within tolerance_s of now                 -> 401 if outside (replay protection)
    JSON -> PromptVersionEvent                          -> 400 if malformed
    type/action we do not handle                        -> 200 {"status": "ignored"}
    event id seen before                                -> 200 {"status": "duplicate"}
    bump the shared prompt stamp (worker thread)        -> 503 if the store is down (Langfuse retries)
    prompt_manager.mark_stale(name)                     -> this process's cache misses next time
    200 {"status": "ok"}; then, in background tasks:    listeners, notify URL POST (retried),
                                                        Slack alert (retried)
Nothing here blocks the event loop: blocking calls run in worker threads, outbound calls are async.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.errors import ConfigError, EvalmonError, TransientError
from shared.langfuse.prompt import LangfusePromptManager, PromptChange
from shared.langfuse.prompt_cache import PromptInvalidation, build_invalidation
from shared.retry import async_retrying
from shared.settings import Settings
from shared.slack.mrkdwn import code, escape

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-langfuse-signature"
WEBHOOK_PATH = "/webhooks/langfuse"
HANDLED_ACTIONS = frozenset({"created", "updated", "deleted"})
DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # prompt bodies are small; 1 MiB leaves room for long prompts
DEFAULT_BODY_TIMEOUT_S = 10.0  # Langfuse sends a small body at once; a client this slow is stuck or hostile


class SlackPoster(Protocol):
    """What the webhook needs from Slack: shared.slack.service.SlackService satisfies it."""

    async def post_message(self, channel: str, text: str, blocks: list[dict[str, Any]] | None = None) -> str: ...


# -- signature -------------------------------------------------------------------------------


class SignatureError(Exception):
    """Why a delivery's signature was refused (the text goes to the log and the 401 body)."""


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `x-langfuse-signature` value Langfuse would send for `body` (also used to sign our notify POST)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify_signature(
    header: str | None, body: bytes, secret: str, *, tolerance_s: float, now: float | None = None
) -> int:
    """Check a signature header against the raw body; return its timestamp or raise SignatureError.

    Accepts several `v1=` values (secret rotation); each is compared in constant time.
    """
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("malformed signature timestamp") from None
        elif key == "v1":
            candidates.append(value.strip().lower())
    if timestamp is None or not candidates:
        raise SignatureError("malformed signature header (want t=<unix>,v1=<hex>)")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
        raise SignatureError("signature does not match")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(f"signature timestamp outside the {tolerance_s:g}s tolerance")
    return timestamp


# -- payload ---------------------------------------------------------------------------------


class WebhookPrompt(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str | None = None
    name: str = Field(min_length=1)
    version: int | None = None
    project_id: str | None = Field(default=None, alias="projectId")
    labels: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    type: str | None = None
    commit_message: str | None = Field(default=None, alias="commitMessage")


class PromptVersionEvent(BaseModel):
    """Langfuse's documented prompt-version webhook payload (unknown extra fields are kept)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(min_length=1)
    timestamp: str | None = None
    type: str
    api_version: str | None = Field(default=None, alias="apiVersion")
    action: str
    prompt: WebhookPrompt


# -- state -----------------------------------------------------------------------------------


@dataclass
class WebhookStats:
    received: int = 0
    accepted: int = 0
    ignored: int = 0
    duplicates: int = 0
    rejected_signature: int = 0
    rejected_size: int = 0
    rejected_timeout: int = 0
    client_disconnects: int = 0
    rejected_payload: int = 0
    invalidation_errors: int = 0
    notify_sent: int = 0
    notify_failed: int = 0
    slack_sent: int = 0
    slack_failed: int = 0


class _SeenEvents:
    """Event ids already handled: bounded LRU with an age limit (Langfuse retries for hours, not days)."""

    def __init__(self, max_size: int = 10_000, max_age_s: float = 24 * 3600) -> None:
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._max_size = max_size
        self._max_age_s = max_age_s

    def add_if_new(self, event_id: str) -> bool:
        now = time.monotonic()
        while self._ids and (
            len(self._ids) >= self._max_size or now - next(iter(self._ids.values())) > self._max_age_s
        ):
            self._ids.popitem(last=False)
        if event_id in self._ids:
            return False
        self._ids[event_id] = now
        return True

    def forget(self, event_id: str) -> None:
        self._ids.pop(event_id, None)

    def __len__(self) -> int:
        return len(self._ids)


class _Background:
    """Fire-and-forget tasks that are still tracked: kept referenced, counted, drained at shutdown."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, timeout_s: float) -> None:
        if not self.tasks:
            return
        _done, pending = await asyncio.wait(set(self.tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("webhook shutdown: cancelled %d background deliveries still running", len(pending))


def _slack_text(event: PromptVersionEvent) -> tuple[str, list[dict[str, Any]]]:
    """The Slack message of a prompt change. Every field is text someone typed in Langfuse: escaped,
    so a prompt named `<!channel>` pings nobody; the prompt name is shown as code."""
    p = event.prompt
    labels = escape(", ".join(p.labels)) or "none"
    text = f"Langfuse prompt {code(p.name)} version {p.version} {escape(event.action)} (labels: {labels})"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f":memo: {text}"}},
    ]
    if p.commit_message:
        commit = escape(p.commit_message[:300])
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"commit: {commit}"}]})
    return text, blocks


def _is_retryable_http(exc: BaseException) -> bool:
    return isinstance(exc, TransientError | httpx.TransportError | TimeoutError)


def _retry_slack(exc: BaseException) -> bool:
    """Slack alerts: retry transient failures and unknown errors; a refusal (bad channel, bad token) is final."""
    return isinstance(exc, TransientError | TimeoutError) or not isinstance(exc, EvalmonError)


# -- receiving: the body, the signature, the event ---------------------------------------------


@dataclass(frozen=True)
class DeliveryLimits:
    """What a delivery must meet before anything is done with it."""

    secret: str
    tolerance_s: float = 300
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    clock: Callable[[], float] = time.time


async def read_body(request: Request, limits: DeliveryLimits, stats: WebhookStats) -> bytes | JSONResponse:
    """The raw body, or the refusal: too large (never buffered beyond the limit), too slow, client gone."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        return _too_large(limits, stats)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    return _too_large(limits, stats)
                chunks.append(chunk)
    except TimeoutError:
        stats.rejected_timeout += 1
        log.warning(
            "webhook: client sent %d of %s body bytes in %gs; answered 408",
            size,
            declared or "?",
            limits.body_timeout_s,
        )
        return JSONResponse(
            {"error": f"body not received within {limits.body_timeout_s:g}s"},
            status_code=408,
            headers={"connection": "close"},
        )
    except ClientDisconnect:
        stats.client_disconnects += 1
        log.warning("webhook: client disconnected after %d of %s body bytes; nothing done", size, declared or "?")
        return JSONResponse({"error": "client disconnected"}, status_code=400)
    return b"".join(chunks)


def _too_large(limits: DeliveryLimits, stats: WebhookStats) -> JSONResponse:
    stats.rejected_size += 1
    return JSONResponse({"error": f"body larger than {limits.max_body_bytes} bytes"}, status_code=413)


def verified_event(
    signature: str | None, raw: bytes, limits: DeliveryLimits, stats: WebhookStats
) -> PromptVersionEvent | JSONResponse:
    """The delivery's event, or the refusal: a bad signature (401), not a prompt-version event (400)."""
    try:
        verify_signature(signature, raw, limits.secret, tolerance_s=limits.tolerance_s, now=limits.clock())
    except SignatureError as exc:
        stats.rejected_signature += 1
        log.warning("webhook: refused delivery: %s", exc)
        return JSONResponse({"error": str(exc)}, status_code=401)
    try:
        return PromptVersionEvent.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        stats.rejected_payload += 1
        reason = "malformed JSON" if not isinstance(exc, ValidationError) else "not a prompt-version event"
        log.warning("webhook: refused delivery: %s", reason)
        return JSONResponse({"error": reason}, status_code=400)


# -- background delivery: what follows an accepted event, off the request ----------------------


class Deliveries:
    """The prompt manager's listeners, the notify POST and the Slack alert of an accepted event:
    background tasks, each retried on its own, none able to fail the delivery Langfuse made."""

    def __init__(
        self,
        stats: WebhookStats,
        *,
        secret: str,
        prompt_manager: LangfusePromptManager | None = None,
        notify_url: str | None = None,
        slack: SlackPoster | None = None,
        channel: str | None = None,
        retry_attempts: int = 5,
        retry_initial_s: float = 0.5,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.stats = stats
        self.secret = secret
        self.prompt_manager = prompt_manager
        self.notify_url = notify_url
        self.slack = slack
        self.channel = channel
        self.retry_attempts = retry_attempts
        self.retry_initial_s = retry_initial_s
        self.background = _Background()
        self._given_client = http_client
        self._own_client: httpx.AsyncClient | None = None

    def http(self) -> httpx.AsyncClient:
        if self._given_client is not None:
            return self._given_client
        if self._own_client is None:
            self._own_client = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        return self._own_client

    def schedule(self, event: PromptVersionEvent, raw: bytes) -> None:
        if self.prompt_manager is not None:
            change = PromptChange(
                name=event.prompt.name,
                action=event.action,
                version=event.prompt.version,
                labels=tuple(event.prompt.labels),
                source="webhook",
            )
            self.background.spawn(self.prompt_manager.anotify_change(change), f"listeners:{event.id}")
        if self.notify_url:
            self.background.spawn(self.notify(event, raw, self.notify_url), f"notify:{event.id}")
        if self.slack is not None and self.channel:
            self.background.spawn(self.alert(event, self.slack, self.channel), f"slack:{event.id}")

    async def notify(self, event: PromptVersionEvent, raw: bytes, url: str) -> None:
        """POST the event to the notify URL, re-signed with a fresh timestamp so the receiver can verify it."""
        try:
            async for attempt in async_retrying(
                self.retry_attempts, initial=self.retry_initial_s, retry_on=_is_retryable_http
            ):
                with attempt:
                    resp = await self.http().post(
                        url,
                        content=raw,
                        headers={"content-type": "application/json", SIGNATURE_HEADER: sign(raw, self.secret)},
                    )
                    if resp.status_code == 429 or resp.status_code >= 500:
                        retry_after = resp.headers.get("retry-after")
                        raise TransientError(
                            f"notify URL answered {resp.status_code}",
                            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
                        )
                    resp.raise_for_status()
            self.stats.notify_sent += 1
        except Exception as exc:
            self.stats.notify_failed += 1
            log.error("webhook: notify POST for event %s failed after retries: %s", event.id, type(exc).__name__)

    async def alert(self, event: PromptVersionEvent, slack: SlackPoster, channel: str) -> None:
        text, blocks = _slack_text(event)
        try:
            async for attempt in async_retrying(
                self.retry_attempts, initial=self.retry_initial_s, retry_on=_retry_slack
            ):
                with attempt:
                    await slack.post_message(channel, text, blocks)
            self.stats.slack_sent += 1
        except Exception as exc:
            self.stats.slack_failed += 1
            log.error("webhook: Slack alert for event %s failed after retries: %s", event.id, type(exc).__name__)

    async def aclose(self) -> None:
        """At shutdown: let running deliveries finish (bounded), then close the client this made."""
        await self.background.drain(timeout_s=10.0)
        if self._own_client is not None:
            await self._own_client.aclose()


# -- handling: one verified event ----------------------------------------------------------------


class PromptWebhook:
    """The app's state and its two endpoints (module DATAFLOW)."""

    def __init__(
        self, limits: DeliveryLimits, deliveries: Deliveries, *, invalidation: PromptInvalidation | None = None
    ) -> None:
        self.limits = limits
        self.deliveries = deliveries
        self.stats = deliveries.stats
        self.invalidation = invalidation
        self.seen = _SeenEvents()

    async def handle(self, request: Request) -> JSONResponse:
        self.stats.received += 1
        raw = await read_body(request, self.limits, self.stats)
        if isinstance(raw, JSONResponse):
            return raw
        event = verified_event(request.headers.get(SIGNATURE_HEADER), raw, self.limits, self.stats)
        if isinstance(event, JSONResponse):
            return event
        return await self.accept(event, raw)

    async def accept(self, event: PromptVersionEvent, raw: bytes) -> JSONResponse:
        """Ignore, deduplicate, or invalidate the prompt everywhere and schedule the deliveries."""
        if event.type != "prompt-version" or event.action not in HANDLED_ACTIONS:
            self.stats.ignored += 1
            log.info("webhook: ignored event %s (type %r, action %r)", event.id, event.type, event.action)
            return JSONResponse({"status": "ignored", "reason": f"unhandled {event.type}/{event.action}"})
        if not self.seen.add_if_new(event.id):
            self.stats.duplicates += 1
            log.info("webhook: duplicate delivery of event %s ignored", event.id)
            return JSONResponse({"status": "duplicate", "id": event.id})
        name = event.prompt.name
        stamp: int | None = None
        if self.invalidation is not None:
            try:
                stamp = await asyncio.to_thread(self.invalidation.bump, name)
            except Exception as exc:
                self.seen.forget(event.id)  # let Langfuse's retry try again
                self.stats.invalidation_errors += 1
                where = self.invalidation.describe()
                log.error("webhook: could not bump %s for %r: %s", where, name, type(exc).__name__)
                return JSONResponse({"error": "prompt cache store unavailable; retry later"}, status_code=503)
        if self.deliveries.prompt_manager is not None:
            self.deliveries.prompt_manager.mark_stale(name, stamp=stamp)
        self.deliveries.schedule(event, raw)
        self.stats.accepted += 1
        log.info(
            "webhook: prompt %r v%s %s; cache invalidated (stamp %s)", name, event.prompt.version, event.action, stamp
        )
        return JSONResponse({"status": "ok", "id": event.id, "prompt": name, "stamp": stamp})

    async def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "invalidation": self.invalidation.describe() if self.invalidation is not None else "process-local",
                "pending_background_tasks": len(self.deliveries.background.tasks),
                "seen_events": len(self.seen),
                "stats": asdict(self.stats),
            }
        )


# -- app: configuration and routing --------------------------------------------------------------


def create_app(
    settings: Settings,
    *,
    prompt_manager: LangfusePromptManager | None = None,
    slack: SlackPoster | None = None,
    notify_url: str | None = None,
    tolerance_s: float = 300,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    invalidation: PromptInvalidation | None = None,
    slack_channel: str | None = None,
    retry_attempts: int = 5,
    retry_initial_s: float = 0.5,
    http_client: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """Build the ASGI app. Needs LANGFUSE_WEBHOOK_SECRET: an unsigned prompt webhook is refused at startup.

    `invalidation` defaults to the prompt manager's store, else the one the settings describe
    (Postgres table or stamp file). `notify_url` and `slack_channel` default to the settings
    (WEBHOOK_NOTIFY_URL, SLACK_ALERT_CHANNEL); a Slack service is built when a channel and a bot token
    are configured and `slack` is not given.
    """
    secret = _webhook_secret(settings)
    if invalidation is None:
        invalidation = prompt_manager.invalidation if prompt_manager is not None else build_invalidation(settings)
    channel = slack_channel or settings.slack_alert_channel
    deliveries = Deliveries(
        WebhookStats(),
        secret=secret,
        prompt_manager=prompt_manager,
        notify_url=notify_url or settings.webhook_notify_url,
        slack=_slack_poster(settings, slack, channel),
        channel=channel,
        retry_attempts=retry_attempts,
        retry_initial_s=retry_initial_s,
        http_client=http_client,
    )
    limits = DeliveryLimits(secret, tolerance_s, max_body_bytes, body_timeout_s, clock)
    return _routes(PromptWebhook(limits, deliveries, invalidation=invalidation))


def _webhook_secret(settings: Settings) -> str:
    secret = settings.langfuse_webhook_secret.get_secret_value() if settings.langfuse_webhook_secret else ""
    if not secret:
        raise ConfigError(
            "LANGFUSE_WEBHOOK_SECRET is not set; copy the secret Langfuse shows (lf-whsec_...)",
            field="LANGFUSE_WEBHOOK_SECRET",
        )
    return secret


def _slack_poster(settings: Settings, slack: SlackPoster | None, channel: str | None) -> SlackPoster | None:
    """The given poster, else a Slack service when a channel and a bot token are configured."""
    if slack is None and channel and settings.slack_bot_token is not None:
        from shared.slack.service import SlackService  # the Slack SDK only when alerts are configured

        slack = SlackService(settings)
    if slack is not None and not channel:
        log.warning("webhook: a Slack service is configured but SLACK_ALERT_CHANNEL is not; no Slack alerts")
    return slack


def _routes(webhook: PromptWebhook) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await webhook.deliveries.aclose()

    app = Starlette(
        routes=[
            Route(WEBHOOK_PATH, webhook.handle, methods=["POST"]),
            Route("/healthz", webhook.healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.stats = webhook.stats
    app.state.background = webhook.deliveries.background
    app.state.invalidation = webhook.invalidation
    return app
