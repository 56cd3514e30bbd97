"""`source.type: slack`: threads of Slack channels where an assistant answers, as `SlackThread` records.

DATAFLOW of `fetch(window)`:

    auth.test                      -> the assistant's ids (unless `bot_user_ids` is configured)
    conversations.history          per channel, `oldest`/`latest` = the window, newest first, cursor pages
      -> merge channels by ts       one newest-first stream over every channel
      -> parent filters             system messages, assistant-started threads, bots, users, regexes
    conversations.replies          only for parents with replies, at most `max_concurrency` in flight,
                                   results yielded in the merged order (newest first)
      -> SlackThread                 raw messages + assistant ids; `thread_to_item` makes the item

A thread belongs to the window of its parent message (the question). Replies arriving after the
run that scored a thread are not rescored (the ledger holds its id); a `settle` window gives the
conversation time to finish first.
"""

from __future__ import annotations

import asyncio
import heapq
import re
from collections import Counter, deque
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from shared.errors import ConfigError, EvalmonError, SourceError
from shared.monitoring.sources.base import DataSource, Ordering, SourceParams, register_source
from shared.monitoring.window import Window
from shared.patterns import Regex
from shared.settings import Settings
from shared.slack.service import SlackService
from shared.slack.thread import SlackThread, author, datetime_to_ts, is_assistant, is_bot

# Message subtypes that are people or bots talking; the rest (joins, topic changes...) are noise.
CONVERSATION_SUBTYPES = frozenset({"bot_message", "thread_broadcast", "file_share", "me_message"})


class SlackSourceParams(SourceParams):
    channels: list[str] = Field(min_length=1, description="channel ids (C...), as the Web API needs them")
    include_bots: bool = Field(default=False, description="keep other bots' messages (as users)")
    exclude_users: list[str] = Field(default_factory=list, description="skip threads started by these user ids")
    include_regex: Regex | None = Field(default=None, description="keep threads whose question matches")
    exclude_regex: Regex | None = Field(default=None, description="skip threads whose question matches")
    max_concurrency: int = Field(default=8, ge=1, le=64, description="conversations.replies calls in flight")
    bot_user_ids: list[str] | None = Field(
        default=None, description="the assistant's user/bot ids; default: the token's own (auth.test)"
    )
    human_agent_ids: list[str] | None = Field(
        default=None, description="only these people are human agents; default: anyone but the asker"
    )
    page_size: int = Field(default=200, ge=1, le=999)


@register_source("slack")
class SlackDataSource(DataSource):
    type_key: ClassVar[str] = "slack"
    ordering: ClassVar[Ordering] = "newest_first"
    default_extractor: ClassVar[str | None] = "slack_thread"
    Params: ClassVar[type[SourceParams]] = SlackSourceParams

    def __init__(
        self,
        params: SourceParams,
        *,
        settings: Settings,
        base_dir: Path,
        key: str | None = None,
        service: SlackService | None = None,
    ) -> None:
        super().__init__(params, settings=settings, base_dir=base_dir, key=key)
        assert isinstance(params, SlackSourceParams)
        self.slack_params = params
        self._service = service
        self._owns_service = service is None
        self._include = re.compile(params.include_regex) if params.include_regex else None
        self._exclude = re.compile(params.exclude_regex) if params.exclude_regex else None
        self._assistant_ids: set[str] | None = None
        self._team_url: str | None = None
        self.skipped: Counter[str] = Counter()

    def default_key(self) -> str:
        return "slack"

    @property
    def service(self) -> SlackService:
        """Created on first use, so validating a config needs no token."""
        if self._service is None:
            self._service = SlackService(self.settings)
        return self._service

    async def check(self) -> None:
        """Fail fast on a bad token: auth.test, which also names the assistant."""
        await self._identity()

    async def _identity(self) -> set[str]:
        if self._assistant_ids is None:
            try:
                me = await self.service.check()
            except ConfigError:  # a rejected token: exit 2, one line
                raise
            except EvalmonError as exc:
                raise SourceError(f"Slack auth.test failed: {exc}") from exc
            self.stats.requests += 1
            self._team_url = me.team_url
            configured = self.slack_params.bot_user_ids
            self._assistant_ids = set(configured) if configured else {i for i in (me.user_id, me.bot_id) if i}
        return self._assistant_ids

    async def fetch(self, window: Window) -> AsyncIterator[SlackThread]:
        assistant_ids = await self._identity()
        limit = self.slack_params.max_concurrency
        pending: deque[asyncio.Task[SlackThread | None]] = deque()
        try:
            async for channel, parent in self._parents(window, assistant_ids):
                pending.append(asyncio.create_task(self._thread(channel, parent, assistant_ids)))
                while len(pending) >= limit:
                    thread = await pending.popleft()
                    if thread is not None:
                        yield thread
            while pending:
                thread = await pending.popleft()
                if thread is not None:
                    yield thread
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            self.stats.extra["skipped"] = dict(self.skipped)

    async def _parents(self, window: Window, assistant_ids: set[str]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Parents of every channel merged newest first (each channel's history already is)."""
        streams = [self._channel_parents(channel, window, assistant_ids) for channel in self.slack_params.channels]
        heap: list[tuple[Decimal, int, dict[str, Any]]] = []
        for index, stream in enumerate(streams):
            first = await anext(stream, None)
            if first is not None:
                heapq.heappush(heap, (-Decimal(first["ts"]), index, first))
        while heap:
            _, index, message = heapq.heappop(heap)
            yield self.slack_params.channels[index], message
            following = await anext(streams[index], None)
            if following is not None:
                heapq.heappush(heap, (-Decimal(following["ts"]), index, following))

    async def _channel_parents(
        self, channel: str, window: Window, assistant_ids: set[str]
    ) -> AsyncIterator[dict[str, Any]]:
        pages = self.service.history_pages(
            channel,
            oldest=datetime_to_ts(window.since),
            latest=datetime_to_ts(window.until),
            inclusive=True,
            limit=self.slack_params.page_size,
        )
        try:
            async for page in pages:
                self.stats.requests += 1
                for message in page:
                    reason = self._skip_parent(message, window, assistant_ids)
                    if reason:
                        self.skipped[reason] += 1
                    else:
                        yield message
        except EvalmonError as exc:
            raise SourceError(f"Slack conversations.history of {channel} failed: {exc}") from exc

    def _skip_parent(self, message: Mapping[str, Any], window: Window, assistant_ids: set[str]) -> str | None:
        """Why a top-level message does not start a thread worth scoring (None: keep it)."""
        ts = message.get("ts")
        if not ts:
            return "no_ts"
        since, until = Decimal(datetime_to_ts(window.since)), Decimal(datetime_to_ts(window.until))
        if not since <= Decimal(str(ts)) < until:
            return "outside_window"
        subtype = message.get("subtype")
        if subtype and subtype not in CONVERSATION_SUBTYPES:
            return "system_message"
        if message.get("thread_ts") and message["thread_ts"] != ts:
            return "broadcast_reply"  # a reply shown in the channel: scored with its own thread
        if is_assistant(message, assistant_ids):
            return "assistant_started"
        if is_bot(message) and not self.slack_params.include_bots:
            return "bot"
        if author(message) in self.slack_params.exclude_users:
            return "excluded_user"
        text = str(message.get("text") or "")
        if self._include is not None and not self._include.search(text):
            return "include_regex"
        if self._exclude is not None and self._exclude.search(text):
            return "exclude_regex"
        return None

    async def _thread(self, channel: str, parent: dict[str, Any], assistant_ids: set[str]) -> SlackThread | None:
        messages = [parent]
        if int(parent.get("reply_count") or 0) > 0:
            try:
                messages = await self.service.replies(channel, str(parent["ts"]), limit=self.slack_params.page_size)
            except EvalmonError as exc:
                raise SourceError(f"Slack conversations.replies of {channel}:{parent['ts']} failed: {exc}") from exc
            self.stats.requests += 1
        kept = [m for m in messages if self._keep_message(m, assistant_ids)]
        if not any(not is_assistant(m, assistant_ids) for m in kept):
            self.skipped["no_user_message"] += 1
            return None
        return SlackThread(
            channel=channel,
            thread_ts=str(parent["ts"]),
            messages=kept,
            assistant_ids=sorted(assistant_ids),
            human_agent_ids=self.slack_params.human_agent_ids,
            team_url=self._team_url,
        )

    def _keep_message(self, message: Mapping[str, Any], assistant_ids: set[str]) -> bool:
        subtype = message.get("subtype")
        if subtype and subtype not in CONVERSATION_SUBTYPES:
            return False
        if is_assistant(message, assistant_ids):
            return True
        return not (is_bot(message) and not self.slack_params.include_bots)

    async def aclose(self) -> None:
        if self._owns_service and self._service is not None:
            await self._service.aclose()
