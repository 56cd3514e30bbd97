"""A loopback fake of the Slack Web API, following Slack's published method contracts.

What it honours (https://api.slack.com/web):
- `POST`/`GET https://slack.com/api/<method>`; arguments as query string, form body
  (`application/x-www-form-urlencoded`) or JSON body (`application/json`), merged in that order.
- Auth by `Authorization: Bearer <token>` (or a `token` argument): `not_authed` when absent,
  `invalid_auth` when wrong. Every answer is a JSON envelope `{"ok": true, ...}` or
  `{"ok": false, "error": "<code>"}` with HTTP 200, as Slack does.
- Cursor pagination: `limit` + `cursor` in, `response_metadata.next_cursor` out ("" on the last
  page), `has_more` on the conversations methods.
- Rate limits: HTTP 429 with a `Retry-After` header (seconds) and `{"ok": false, "error":
  "ratelimited"}`; injected per method with `fail_next`. 5xx injection works the same way.
- Methods: auth.test, chat.postMessage, chat.update, conversations.history (newest first,
  `oldest`/`latest`/`inclusive`), conversations.replies (parent first, oldest first; the parent
  heads every page, as Slack repeats it), users.info.
- Channels named rather than given by id (`#evals`) resolve to a stable id, which chat.postMessage
  answers with, as Slack does (files.completeUploadExternal takes ids only).
- File uploads, the three steps of slack_sdk's `files_upload_v2`: files.getUploadURLExternal
  (`filename`, `length` in bytes -> `upload_url`, `file_id`); a POST of the bytes to `upload_url`
  (raw or multipart; no token, the URL is the credential; HTTP 200 `OK - <bytes>`); and
  files.completeUploadExternal (`files` JSON `[{"id", "title"}]`, optional `channel_id`,
  `thread_ts`, `initial_comment`): once per file, only after its bytes arrived and only when their
  count matches `length`; shared files post a message (in the thread when `thread_ts`). Kept in
  `uploads` (file id -> filename, bytes, title, where shared).

Threads are seeded with `add_thread`; everything the bot posts is kept in `posted` for assertions.
The server runs uvicorn in a thread on 127.0.0.1 with an ephemeral port.
"""

from __future__ import annotations

import asyncio
import base64
import email.policy
import itertools
import json
import re
import threading
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from .loopback import LoopbackServer

TEAM_ID = "T0FAKE"
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9_-]+$")
TEAM_URL = "https://fake-team.slack.com/"


@dataclass
class Injection:
    status: int
    retry_after: int | None
    remaining: int


@dataclass
class FakeSlack:
    """State of the fake workspace. Thread-safe enough for tests: one lock around mutations."""

    token: str = "xoxb-fake-token"
    bot_user_id: str = "UBOT"
    bot_id: str = "BBOT"
    bot_name: str = "assistant"
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    # channel -> top-level messages (any order; sorted on read)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    # (channel, thread_ts) -> replies (without the parent)
    replies: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    posted: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    injections: dict[str, list[Injection]] = field(default_factory=lambda: defaultdict(list))
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)  # file id -> upload (bytes, where shared)
    channel_ids: dict[str, str] = field(default_factory=dict)  # channel name -> its id
    replies_delay_s: float = 0.0
    in_flight_replies: int = 0
    max_in_flight_replies: int = 0
    _clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.users.setdefault(
            self.bot_user_id,
            {"id": self.bot_user_id, "name": self.bot_name, "is_bot": True, "profile": {"bot_id": self.bot_id}},
        )

    # -- seeding ---------------------------------------------------------------------------
    def add_user(self, user_id: str, name: str, *, is_bot: bool = False) -> None:
        self.users[user_id] = {"id": user_id, "name": name, "real_name": name.title(), "is_bot": is_bot}

    def add_thread(self, channel: str, messages: list[dict[str, Any]]) -> str:
        """Seed a thread: the first message is the parent; each needs `ts` and `user` or `bot_id`.

        Parent messages get Slack's thread fields (`thread_ts`, `reply_count`, `reply_users`,
        `latest_reply`) when there are replies. Returns the thread ts.
        """
        parent = dict(messages[0])
        parent.setdefault("type", "message")
        thread_ts = parent["ts"]
        replies = []
        for raw in messages[1:]:
            reply = {"type": "message", **raw, "thread_ts": thread_ts}
            if "bot_id" in reply and "user" not in reply and reply["bot_id"] == self.bot_id:
                reply["user"] = self.bot_user_id
            replies.append(reply)
        if replies:
            parent.update(
                thread_ts=thread_ts,
                reply_count=len(replies),
                reply_users=sorted({r.get("user", "") for r in replies if r.get("user")}),
                reply_users_count=len({r.get("user") for r in replies if r.get("user")}),
                latest_reply=max(r["ts"] for r in replies),
            )
        with self._lock:
            self.history[channel].append(parent)
            self.replies[(channel, thread_ts)] = replies
        return str(thread_ts)

    def fail_next(self, method: str, *, status: int = 429, retry_after: int | None = 0, times: int = 1) -> None:
        """The next `times` calls of `method` answer `status` (429 carries Retry-After seconds)."""
        with self._lock:
            self.injections[method].append(Injection(status, retry_after, times))

    def call_count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    def channel_id(self, channel: str) -> str:
        """A channel id as Slack answers with: ids stay, names (`#evals`, `evals`) get a stable id."""
        if _CHANNEL_ID.match(channel):
            return channel
        name = channel.removeprefix("#")
        with self._lock:
            return self.channel_ids.setdefault(name, f"C{zlib.crc32(name.encode()):010d}")

    def next_ts(self) -> str:
        """A fresh message ts (now, with a unique microsecond suffix), as Slack's are unique per channel."""
        tick = next(self._clock)
        return f"{int(time.time())}.{tick:06d}"


def _ts_key(ts: str) -> Decimal:
    return Decimal(ts)


def _page(items: list[dict[str, Any]], args: dict[str, Any], default_limit: int) -> tuple[list[dict[str, Any]], str]:
    """Cursor pagination: the cursor is an opaque base64 offset, as Slack's are opaque strings."""
    try:
        limit = int(args.get("limit") or default_limit)
    except ValueError:
        limit = default_limit
    limit = max(1, min(limit, 999))
    cursor = str(args.get("cursor") or "")
    offset = 0
    if cursor:
        try:
            offset = int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("offset:"))
        except ValueError as exc:
            raise _Fail("invalid_cursor") from exc
    chunk = items[offset : offset + limit]
    more = offset + limit < len(items)
    next_cursor = base64.urlsafe_b64encode(f"offset:{offset + limit}".encode()).decode() if more else ""
    return chunk, next_cursor


def _in_range(ts: str, args: dict[str, Any]) -> bool:
    inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
    value = _ts_key(ts)
    if args.get("oldest"):
        oldest = _ts_key(str(args["oldest"]))
        if value < oldest or (value == oldest and not inclusive):
            return False
    if args.get("latest"):
        latest = _ts_key(str(args["latest"]))
        if value > latest or (value == latest and not inclusive):
            return False
    return True


class _Fail(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def build_app(state: FakeSlack) -> Starlette:
    async def api(request: Request) -> JSONResponse:
        method = request.path_params["method"]
        args: dict[str, Any] = dict(request.query_params)
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        if body and content_type.startswith("application/json"):
            try:
                parsed = json.loads(body)
            except ValueError:
                return JSONResponse({"ok": False, "error": "invalid_json"})
            if not isinstance(parsed, dict):
                return JSONResponse({"ok": False, "error": "invalid_json"})
            args.update(parsed)
        elif body:  # application/x-www-form-urlencoded (Slack's default body encoding)
            args.update(dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)))
        with state._lock:
            state.calls.append((method, {k: v for k, v in args.items() if k != "token"}))
            queue = state.injections.get(method) or []
            injection = queue[0] if queue else None
            if injection is not None:
                injection.remaining -= 1
                if injection.remaining <= 0:
                    queue.pop(0)
        if injection is not None:
            if injection.status == 429:
                headers = {"Retry-After": str(injection.retry_after or 0)}
                return JSONResponse({"ok": False, "error": "ratelimited"}, status_code=429, headers=headers)
            return JSONResponse({"ok": False, "error": "internal_error"}, status_code=injection.status)

        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else str(args.get("token") or "")
        if not token:
            return JSONResponse({"ok": False, "error": "not_authed"})
        if token != state.token:
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        handler = HANDLERS.get(method)
        if handler is None:
            return JSONResponse({"ok": False, "error": "unknown_method"}, status_code=404)
        if method == "files.getUploadURLExternal":
            args["_base_url"] = str(request.base_url)
        try:
            if method == "conversations.replies":
                return JSONResponse(await _replies_with_delay(state, args))
            return JSONResponse({"ok": True, **handler(state, args)})
        except _Fail as fail:
            return JSONResponse({"ok": False, "error": fail.error})

    async def upload(request: Request) -> PlainTextResponse:
        """The upload URL files.getUploadURLExternal handed out: raw bytes or one multipart part."""
        file_id = request.path_params["file_id"]
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            message = BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + body
            )
            parts = [
                part
                for part in message.iter_parts()
                if part.get_filename() or part.get_param("name", header="content-disposition")
            ]
            body = parts[0].get_payload(decode=True) if parts else b""
        with state._lock:
            state.calls.append(("upload", {"file_id": file_id, "bytes": len(body)}))
            upload = state.uploads.get(file_id)
            if upload is None or upload["completed"]:
                return PlainTextResponse("Not Found", status_code=404)
            upload["data"] = bytes(body)
        return PlainTextResponse(f"OK - {len(body)}")

    return Starlette(
        routes=[
            Route("/api/{method}", api, methods=["GET", "POST"]),
            Route("/upload/v1/{file_id}", upload, methods=["POST"]),
        ]
    )


def _require(args: dict[str, Any], *names: str) -> None:
    for name in names:
        if not args.get(name):
            raise _Fail("invalid_arguments")


def _auth_test(state: FakeSlack, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": TEAM_URL,
        "team": "Fake Team",
        "user": state.bot_name,
        "team_id": TEAM_ID,
        "user_id": state.bot_user_id,
        "bot_id": state.bot_id,
        "is_enterprise_install": False,
    }


def _blocks(args: dict[str, Any]) -> list[Any] | None:
    blocks = args.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError as exc:
            raise _Fail("invalid_blocks_format") from exc
    if blocks is not None and not isinstance(blocks, list):
        raise _Fail("invalid_blocks_format")
    return blocks


def _post_message(state: FakeSlack, args: dict[str, Any]) -> dict[str, Any]:
    _require(args, "channel")
    args = {**args, "channel": state.channel_id(str(args["channel"]))}
    blocks = _blocks(args)
    if not args.get("text") and not blocks and not args.get("attachments"):
        raise _Fail("no_text")
    ts = state.next_ts()
    message: dict[str, Any] = {
        "type": "message",
        "user": state.bot_user_id,
        "bot_id": state.bot_id,
        "text": args.get("text", ""),
        "ts": ts,
    }
    if blocks is not None:
        message["blocks"] = blocks
    with state._lock:
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
            state.replies[(args["channel"], args["thread_ts"])].append(message)
        else:
            state.history[args["channel"]].append(message)
        state.posted.append({"channel": args["channel"], **message})
    return {"channel": args["channel"], "ts": ts, "message": message}


def _update(state: FakeSlack, args: dict[str, Any]) -> dict[str, Any]:
    _require(args, "channel", "ts")
    blocks = _blocks(args)
    with state._lock:
        for message in state.posted:
            if message["channel"] == args["channel"] and message["ts"] == args["ts"]:
                message["text"] = args.get("text", message["text"])
                if blocks is not None:
                    message["blocks"] = blocks
                state.updated.append(dict(message))
                return {"channel": args["channel"], "ts": args["ts"], "text": message["text"], "message": message}
    raise _Fail("message_not_found")


def _history(state: FakeSlack, args: dict[str, Any]) -> dict[str, Any]:
    _require(args, "channel")
    if args["channel"] not in state.history:
        raise _Fail("channel_not_found")
    messages = sorted(state.history[args["channel"]], key=lambda m: _ts_key(m["ts"]), reverse=True)
    messages = [m for m in messages if _in_range(m["ts"], args)]
    chunk, next_cursor = _page(messages, args, default_limit=100)
    return {
        "messages": chunk,
        "has_more": bool(next_cursor),
        "pin_count": 0,
        "response_metadata": {"next_cursor": next_cursor},
    }


async def _replies_with_delay(state: FakeSlack, args: dict[str, Any]) -> dict[str, Any]:
    with state._lock:
        state.in_flight_replies += 1
        state.max_in_flight_replies = max(state.max_in_flight_replies, state.in_flight_replies)
    try:
        if state.replies_delay_s:
            await asyncio.sleep(state.replies_delay_s)
        try:
            return {"ok": True, **_replies(state, args)}
        except _Fail as fail:
            return {"ok": False, "error": fail.error}
    finally:
        with state._lock:
            state.in_flight_replies -= 1


def _replies(state: FakeSlack, args: dict[str, Any]) -> dict[str, Any]:
    _require(args, "channel", "ts")
    channel, ts = args["channel"], str(args["ts"])
    if channel not in state.history:
        raise _Fail("channel_not_found")
    parent = next((m for m in state.history[channel] if m["ts"] == ts), None)
    if parent is None:
        raise _Fail("thread_not_found")
    replies = sorted(state.replies.get((channel, ts), []), key=lambda m: _ts_key(m["ts"]))
    replies = [r for r in replies if _in_range(r["ts"], args)]
    # As Slack does, every page starts with the parent: `limit` messages are the parent and
    # `limit - 1` replies, so a thread longer than one page returns the parent once per page.
    try:
        per_page = max(1, min(int(args.get("limit") or 1000), 999) - 1)
    except ValueError:
        per_page = 999
    chunk, next_cursor = _page(replies, {**args, "limit": per_page}, default_limit=per_page)
    return {
        "messages": [parent, *chunk],
        "has_more": bool(next_cursor),
        "response_metadata": {"next_cursor": next_cursor},
    }


def _users_info(state: FakeSlack, args: dict[str, Any]) -> dict[str, Any]:
    _require(args, "user")
    user = state.users.get(str(args["user"]))
    if user is None:
        raise _Fail("user_not_found")
    return {"user": user}


def _get_upload_url(state: FakeSlack, args: dict[str, Any]) -> dict[str, Any]:
    _require(args, "filename", "length")
    try:
        length = int(str(args["length"]))
    except ValueError:
        raise _Fail("invalid_arguments") from None
    if length <= 0:
        raise _Fail("invalid_arguments")
    file_id = f"F{len(state.uploads) + 1:08d}"
    with state._lock:
        state.uploads[file_id] = {
            "filename": str(args["filename"]),
            "length": length,
            "alt_txt": args.get("alt_txt"),
            "data": None,
            "completed": False,
        }
    return {"upload_url": f"{args['_base_url']}upload/v1/{file_id}", "file_id": file_id}


def _complete_upload(state: FakeSlack, args: dict[str, Any]) -> dict[str, Any]:
    _require(args, "files")
    files = args["files"]
    if isinstance(files, str):
        try:
            files = json.loads(files)
        except ValueError:
            raise _Fail("invalid_arguments") from None
    if not isinstance(files, list) or not files or not all(isinstance(f, dict) and f.get("id") for f in files):
        raise _Fail("invalid_arguments")
    channel = args.get("channel_id") or None
    thread_ts = args.get("thread_ts") or None
    if thread_ts and not channel:
        raise _Fail("invalid_arguments")
    if channel and not _CHANNEL_ID.match(str(channel)):
        raise _Fail("channel_not_found")
    shared = []
    with state._lock:
        for entry in files:
            upload = state.uploads.get(str(entry["id"]))
            if upload is None or upload["completed"] or upload["data"] is None:
                raise _Fail("file_not_found")
            if len(upload["data"]) != upload["length"]:
                raise _Fail("file_upload_size_mismatch")
        for entry in files:
            upload = state.uploads[str(entry["id"])]
            upload.update(completed=True, title=entry.get("title"), channel=channel, thread_ts=thread_ts)
            upload["initial_comment"] = args.get("initial_comment")
            shared.append(
                {"id": entry["id"], "title": entry.get("title") or upload["filename"], "name": upload["filename"]}
            )
    if channel:
        message: dict[str, Any] = {
            "type": "message",
            "user": state.bot_user_id,
            "bot_id": state.bot_id,
            "text": args.get("initial_comment") or "",
            "files": shared,
            "ts": state.next_ts(),
        }
        with state._lock:
            if thread_ts:
                message["thread_ts"] = thread_ts
                state.replies[(channel, thread_ts)].append(message)
            else:
                state.history[channel].append(message)
    return {"files": shared}


HANDLERS: dict[str, Any] = {
    "auth.test": _auth_test,
    "files.getUploadURLExternal": _get_upload_url,
    "files.completeUploadExternal": _complete_upload,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "conversations.history": _history,
    "conversations.replies": _replies,
    "users.info": _users_info,
}


class SlackServer(LoopbackServer):
    """Run the fake on 127.0.0.1:<ephemeral> in a thread: `with SlackServer() as fake: fake.url`."""

    label = "fake Slack server"

    def __init__(self, state: FakeSlack | None = None) -> None:
        self.state = state or FakeSlack()
        super().__init__(build_app(self.state))

    @property
    def url(self) -> str:
        """The base URL to give slack_sdk (`base_url`) or SLACK_API_URL."""
        return f"http://127.0.0.1:{self.port}/api/"
