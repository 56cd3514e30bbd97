"""`SlackService`: the one way evalmon talks to Slack (post and update messages, read threads).

It wraps slack_sdk's `AsyncWebClient` and retries through evalmon's one retry policy
(`shared.retry`): rate limits (HTTP 429, honouring `Retry-After`), 5xx answers, timeouts and
dropped connections are retried with backoff and jitter, a bounded number of times (the SDK's own
retry handlers are switched off, so attempts are countable and the same everywhere). What is left
is translated into evalmon's error taxonomy (architecture.md section 6):

- still rate limited, 5xx, or unreachable after the retries -> `TransientError`
- a Slack `{"ok": false, "error": ...}` answer (bad token, unknown channel) -> `SlackError`
- `check()` (the preflight): a token Slack rejects -> `ConfigError` (exit 2)

The base URL comes from `SLACK_API_URL` (tests point it at a loopback fake) and the token from
`SLACK_BOT_TOKEN`; the token is never logged or put in an error message.

One aiohttp session is kept per event loop (opened lazily, closed by `aclose`), so many
`conversations.replies` calls reuse connections instead of opening one session per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from shared.errors import ConfigError, EvalmonError, TransientError
from shared.retry import async_retrying
from shared.settings import Settings
from shared.slack.thread import unique_by_ts

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://slack.com/api/"


class SlackError(EvalmonError):
    """Slack answered `ok: false` (e.g. `invalid_auth`, `channel_not_found`): not worth retrying."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"Slack {method} failed: {error}")
        self.method = method
        self.error = error


@dataclass(frozen=True)
class BotIdentity:
    """Who the token belongs to (`auth.test`): used to tell the assistant's messages apart."""

    user_id: str
    bot_id: str | None
    team_id: str | None
    team_url: str | None
    name: str | None


# `ok: false` errors that mean the token itself is wrong: a config error at the preflight.
CREDENTIAL_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "no_permission"}
)


class SlackService:
    """Async Slack Web API access with retries. Use `async with` or call `aclose()` when done."""

    def __init__(
        self,
        settings: Settings,
        *,
        token: str | None = None,
        base_url: str | None = None,
        max_retries: int = 3,
        retry_backoff_s: float = 0.5,
        retry_max_s: float = 30.0,
        timeout_s: int = 30,
    ) -> None:
        secret = token or (settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None)
        if not secret:
            raise ConfigError("Slack needs a bot token", field="SLACK_BOT_TOKEN")
        self._token = secret
        base = base_url or settings.slack_api_url or DEFAULT_BASE_URL
        self.base_url = base if base.endswith("/") else base + "/"
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.retry_max_s = retry_max_s
        self.requests = 0  # HTTP attempts, retries included
        self.timeout_s = timeout_s
        self._clients: dict[asyncio.AbstractEventLoop, tuple[AsyncWebClient, aiohttp.ClientSession]] = {}

    def __repr__(self) -> str:  # never show the token
        return f"SlackService(base_url={self.base_url!r})"

    async def __aenter__(self) -> SlackService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plumbing ---------------------------------------------------------------------------
    def _client(self) -> AsyncWebClient:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None or entry[1].closed:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
            client = AsyncWebClient(
                token=self._token,
                base_url=self.base_url,
                timeout=self.timeout_s,
                session=session,
                retry_handlers=[],  # `call` retries, with the policy every other service uses
            )
            entry = (client, session)
            self._clients[loop] = entry
        return entry[0]

    async def aclose(self) -> None:
        """Close the sessions opened on the running loop (others are dropped with their loop)."""
        loop = asyncio.get_running_loop()
        for owner, (_, session) in list(self._clients.items()):
            if owner is loop and not session.closed:
                await session.close()
            del self._clients[owner]

    async def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Call a Web API method by name with retries, mapping failures onto evalmon errors."""
        async for attempt in async_retrying(
            self.max_retries + 1, initial=self.retry_backoff_s, maximum=self.retry_max_s
        ):
            with attempt:
                return await self._call_once(method, kwargs)
        raise AssertionError("unreachable: async_retrying re-raises")  # pragma: no cover

    async def _call_once(self, method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        client = self._client()
        self.requests += 1
        # The SDK's typed method (`chat_postMessage`, ...) encodes arguments as Slack documents for
        # that method (JSON for writes, query string for reads); other methods go through api_call.
        typed = getattr(client, method.replace(".", "_"), None)
        try:
            if callable(typed):
                response: AsyncSlackResponse = await typed(**kwargs)
            else:
                response = await client.api_call(method, params=kwargs)
        except SlackApiError as exc:
            raise _translate(method, exc) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"Slack {method} unreachable: {type(exc).__name__}") from None
        data = response.data
        if not isinstance(data, dict):
            raise TransientError(f"Slack {method} returned no JSON body")
        return data

    async def check(self) -> BotIdentity:
        """The preflight: who the token belongs to (`auth.test`).

        A token Slack rejects is a ConfigError (exit 2); an outage that outlasts the retries stays a
        TransientError, for the caller to report as unavailable (exit 1).
        """
        try:
            return await self.auth_test()
        except SlackError as exc:
            if exc.error in CREDENTIAL_ERRORS:
                raise ConfigError(
                    f"Slack rejected the bot token ({exc.error}): check SLACK_BOT_TOKEN", field="SLACK_BOT_TOKEN"
                ) from None
            raise

    # -- messages ---------------------------------------------------------------------------
    async def post_message(
        self,
        channel: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
    ) -> str:
        """Post a message (Block Kit `blocks` optional, `text` is the notification fallback); return its ts."""
        kwargs: dict[str, Any] = {"channel": channel, "text": text}
        if blocks is not None:
            kwargs["blocks"] = list(blocks)
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
        data = await self.call("chat.postMessage", **kwargs)
        return str(data["ts"])

    async def update_message(
        self, channel: str, ts: str, text: str, blocks: Sequence[dict[str, Any]] | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
        if blocks is not None:
            kwargs["blocks"] = list(blocks)
        await self.call("chat.update", **kwargs)

    # -- reading ----------------------------------------------------------------------------
    async def auth_test(self) -> BotIdentity:
        data = await self.call("auth.test")
        return BotIdentity(
            user_id=str(data.get("user_id") or ""),
            bot_id=data.get("bot_id"),
            team_id=data.get("team_id"),
            team_url=data.get("url"),
            name=data.get("user"),
        )

    async def user_info(self, user: str) -> dict[str, Any]:
        data = await self.call("users.info", user=user)
        return dict(data.get("user") or {})

    async def history_pages(
        self,
        channel: str,
        *,
        oldest: str | None = None,
        latest: str | None = None,
        inclusive: bool = False,
        limit: int = 200,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Top-level messages of a channel, newest first, one page at a time (cursor pagination)."""
        cursor: str | None = None
        while True:
            args: dict[str, Any] = {"channel": channel, "limit": limit, "inclusive": inclusive}
            if oldest is not None:
                args["oldest"] = oldest
            if latest is not None:
                args["latest"] = latest
            if cursor:
                args["cursor"] = cursor
            data = await self.call("conversations.history", **args)
            yield list(data.get("messages") or [])
            cursor = _next_cursor(data)
            if not cursor:
                return

    async def replies(self, channel: str, ts: str, *, limit: int = 200) -> list[dict[str, Any]]:
        """Every message of a thread (parent first), following cursors to the end, each once.

        Slack repeats the parent at the top of every page; `unique_by_ts` keeps one copy.
        """
        messages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            args: dict[str, Any] = {"channel": channel, "ts": ts, "limit": limit}
            if cursor:
                args["cursor"] = cursor
            data = await self.call("conversations.replies", **args)
            messages.extend(data.get("messages") or [])
            cursor = _next_cursor(data)
            if not cursor:
                return unique_by_ts(messages)


def _next_cursor(data: dict[str, Any]) -> str | None:
    meta = data.get("response_metadata") or {}
    cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
    return str(cursor) if cursor else None


def _translate(method: str, exc: SlackApiError) -> EvalmonError:
    response = exc.response
    status = getattr(response, "status_code", 200)
    body = response.data if isinstance(getattr(response, "data", None), dict) else {}
    error = str(body.get("error") or f"HTTP {status}")
    if status == 429 or error == "ratelimited":
        retry_after = _header(response, "Retry-After")
        return TransientError(f"Slack {method} still rate limited", retry_after=retry_after)
    if status >= 500 or error in ("internal_error", "fatal_error", "service_unavailable", "request_timeout"):
        return TransientError(f"Slack {method} failed: {error}")
    return SlackError(method, error)


def _header(response: Any, name: str) -> float | None:
    headers = getattr(response, "headers", None) or {}
    for key, value in dict(headers).items():
        if key.lower() == name.lower():
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                return None
    return None
