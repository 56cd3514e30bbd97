"""A loopback fake of OpenAI's Chat Completions API, used through the official `openai` SDK.

What it honours (https://platform.openai.com/docs/api-reference/chat/create):
- `POST /v1/chat/completions` with a JSON body (`model` and `messages` required); auth by
  `Authorization: Bearer <key>` (401 `invalid_api_key` otherwise).
- The response object: `{id, object: "chat.completion", created, model, choices: [{index,
  message: {role: "assistant", content, refusal: null}, finish_reason, logprobs: null}],
  usage: {prompt_tokens, completion_tokens, total_tokens}}`.
- `response_format: {"type": "json_object"}`: as OpenAI, a 400 when no message mentions "json".
- Errors in OpenAI's envelope `{"error": {message, type, param, code}}`: 429 `rate_limit_exceeded`
  with a `Retry-After` header (seconds), 500 `server_error`, 503; injected with `fail_next`.

Test controls: `responder(body) -> str` decides the assistant's content (default: a valid 1-5 rubric
answer); `malformed(kind)` switches to a broken answer (code fence, trailing comma, prose, cut off,
not JSON); `latency_s` slows every answer (asyncio.sleep: the server stays concurrent); `usage`
fixes the reported token counts. Counters: `attempts` (every POST), `completions` (every 200),
`bodies` (request bodies), `max_in_flight`.

The server runs uvicorn in a thread on 127.0.0.1 with an ephemeral port:
`with OpenAIServer() as fake: AsyncOpenAI(base_url=fake.base_url, api_key=fake.state.api_key)`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .loopback import LoopbackServer

Responder = Callable[[dict[str, Any]], str]

MALFORMED = {
    "fenced": '```json\n{"score": 4, "label": "good", "reasoning": "fenced"}\n```',
    "trailing_comma": '{"score": 3, "label": "fair", "reasoning": "comma",}',
    "prose": 'Here is my verdict: {"score": 5, "label": "excellent", "reasoning": "prose"} Hope it helps.',
    "truncated": '{"score": 4, "label": "go',
    "not_json": "I think the answer is quite good, maybe a four.",
    "empty": "",
    "wrong_type": '{"score": "high", "label": "good"}',
    "out_of_range": '{"score": 9, "label": "good", "reasoning": "off the scale"}',
}


def default_responder(body: dict[str, Any]) -> str:
    return json.dumps({"score": 4, "label": "good", "reasoning": "Grounded and complete."})


@dataclass
class Injection:
    status: int
    retry_after: float | None
    remaining: int


@dataclass
class FakeOpenAI:
    """State of the fake provider; one lock around mutations (the server runs in another thread)."""

    api_key: str = "fake-judge-key"
    latency_s: float = 0.0
    responder: Responder = default_responder
    usage: tuple[int, int] | None = None  # (prompt_tokens, completion_tokens); None: ~4 chars a token
    attempts: int = 0
    completions: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    injections: list[Injection] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int = 429, *, retry_after: float | None = None, times: int = 1) -> None:
        """The next `times` requests answer `status` (429 carries Retry-After when given)."""
        with self._lock:
            self.injections.append(Injection(status, retry_after, times))

    def fail_always(self, status: int = 500) -> None:
        self.fail_next(status, times=10**9)

    def malformed(self, kind: str) -> None:
        """Answer every request with one of MALFORMED's broken outputs."""
        text = MALFORMED[kind]
        self.responder = lambda body: text

    def reset_counts(self) -> None:
        with self._lock:
            self.attempts = 0
            self.completions = 0
            self.bodies.clear()

    def _take_injection(self) -> Injection | None:
        with self._lock:
            while self.injections and self.injections[0].remaining <= 0:
                self.injections.pop(0)
            if not self.injections:
                return None
            injection = self.injections[0]
            injection.remaining -= 1
            return injection


def _error(
    status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def build_app(state: FakeOpenAI) -> Starlette:
    async def chat_completions(request: Request) -> JSONResponse:
        with state._lock:
            state.attempts += 1
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            return await _handle(state, request)
        finally:
            with state._lock:
                state.in_flight -= 1

    return Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])


async def _handle(state: FakeOpenAI, request: Request) -> JSONResponse:
    auth = request.headers.get("authorization", "")
    if auth != f"Bearer {state.api_key}":
        return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    injection = state._take_injection()
    if injection is not None:
        if injection.status == 429:
            headers = {"retry-after": f"{injection.retry_after:g}"} if injection.retry_after is not None else None
            return _error(
                429,
                "Rate limit reached for requests. Please try again later.",
                "requests",
                "rate_limit_exceeded",
                headers,
            )
        return _error(injection.status, "The server had an error while processing your request.", "server_error", None)
    try:
        body = json.loads(await request.body())
    except json.JSONDecodeError:
        return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error", None)
    if not isinstance(body, dict) or not body.get("model") or not isinstance(body.get("messages"), list):
        return _error(400, "'model' and 'messages' are required properties.", "invalid_request_error", None)
    messages = body["messages"]
    text = "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object" and "json" not in text.lower():
        return _error(
            400,
            "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            "invalid_request_error",
            None,
        )
    if state.latency_s:
        await asyncio.sleep(state.latency_s)
    content = state.responder(body)
    prompt_tokens, completion_tokens = state.usage or (_tokens(text), _tokens(content))
    with state._lock:
        state.completions += 1
        state.bodies.append(body)
        number = next(state._ids)
    return JSONResponse(
        {
            "id": f"chatcmpl-fake{number:06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": "fp_fake",
        },
        headers={"x-request-id": f"req_fake{number:06d}"},
    )


class OpenAIServer(LoopbackServer):
    """Run the fake on 127.0.0.1:<ephemeral> in a thread: `with OpenAIServer() as fake: fake.base_url`."""

    label = "fake OpenAI server"

    def __init__(self, state: FakeOpenAI | None = None) -> None:
        self.state = state or FakeOpenAI()
        super().__init__(build_app(self.state), backlog=1024)

    @property
    def base_url(self) -> str:
        """What to give the SDK (`base_url`) or OPENAI_BASE_URL."""
        return f"http://127.0.0.1:{self.port}/v1"
