"""POST /webhooks/langfuse: every refusal case, dedup, invalidation and background deliveries."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.langfuse_prompts import FakeLangfusePrompts, langfuse_signature, prompt_version_event
from fakes.slack_server import SlackServer
from starlette.applications import Starlette

from shared.errors import ConfigError, TransientError
from shared.langfuse.prompt import LangfusePromptManager, PromptChange
from shared.langfuse.prompt_cache import StampFilePromptStamps
from shared.langfuse.webhook import create_app, verify_signature
from shared.slack.service import SlackService

from .conftest import SECRET, lf_settings

PROMPT = {"name": "judge", "version": 2, "labels": ["production"], "type": "text", "prompt": "Rate {{a}}"}


def signed(body: bytes, *, secret: str = SECRET, t: int | None = None) -> dict[str, str]:
    return {"content-type": "application/json", "x-langfuse-signature": langfuse_signature(body, secret, t)}


class RecordingSlack:
    """A SlackPoster that fails `failures` times (as a down Slack would) before it succeeds."""

    def __init__(self, failures: int = 0, *, delay_s: float = 0.0) -> None:
        self.failures = failures
        self.delay_s = delay_s
        self.attempts = 0
        self.posted: list[tuple[str, str]] = []
        self.done = threading.Event()

    async def post_message(self, channel: str, text: str, blocks: list[dict[str, Any]] | None = None) -> str:
        self.attempts += 1
        await asyncio.sleep(self.delay_s)
        if self.attempts <= self.failures:
            raise TransientError("slack down")
        self.posted.append((channel, text))
        self.done.set()
        return "1.0"


def make_app(tmp_path: Path, **kwargs: Any) -> tuple[Starlette, StampFilePromptStamps]:
    stamps = StampFilePromptStamps(tmp_path / "stamps.json")
    settings = lf_settings(None, langfuse_webhook_secret=SECRET)
    kwargs.setdefault("invalidation", stamps)
    kwargs.setdefault("retry_initial_s", 0.01)
    return create_app(settings, **kwargs), stamps


async def post(app: Starlette, body: bytes, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://webhook") as client:
        return await client.post("/webhooks/langfuse", content=body, headers=headers)


async def settle(app: Starlette, timeout_s: float = 5.0) -> None:
    """Wait for the app's background deliveries (the response never waits for them)."""
    deadline = time.monotonic() + timeout_s
    while app.state.background.tasks and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def test_valid_delivery_invalidates_calls_listeners_and_alerts(tmp_path: Path) -> None:
    with FakeLangfusePrompts() as langfuse:
        manager = LangfusePromptManager(
            lf_settings(langfuse), invalidation=StampFilePromptStamps(tmp_path / "s.json"), max_retries=0
        )
        langfuse.add("judge", "v1 {{a}}", labels=["production"])
        assert manager.get("judge").version == 1
        langfuse.add("judge", "v2 {{a}}", labels=["production"])
        changes: list[PromptChange] = []
        manager.on_change(changes.append)
        slack = RecordingSlack()
        app, stamps = make_app(tmp_path, prompt_manager=manager, slack=slack, slack_channel="#prompts")
        body = prompt_version_event({**PROMPT, "commitMessage": "stricter"}, "updated")

        async def run() -> httpx.Response:
            resp = await post(app, body, signed(body))
            await settle(app)
            return resp

        resp = asyncio.run(run())
        assert resp.status_code == 200 and resp.json()["status"] == "ok"
        assert stamps.snapshot() == {"judge": 1}
        assert manager.get("judge").version == 2  # the cached v1 was marked stale
        assert [(c.name, c.action, c.version, c.source) for c in changes] == [("judge", "updated", 2, "webhook")]
        assert slack.posted == [("#prompts", "Langfuse prompt `judge` version 2 updated (labels: production)")]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing header", "missing"),
        ("wrong secret", "does not match"),
        ("tampered body", "does not match"),
        ("stale timestamp", "tolerance"),
        ("future timestamp", "tolerance"),
        ("malformed header", "malformed"),
    ],
)
def test_unauthenticated_deliveries_are_refused_with_401(tmp_path: Path, case: str, expected: str) -> None:
    slack = RecordingSlack()
    app, stamps = make_app(tmp_path, slack=slack, slack_channel="#prompts")
    body = prompt_version_event(PROMPT)
    headers = signed(body)
    if case == "missing header":
        del headers["x-langfuse-signature"]
    elif case == "wrong secret":
        headers = signed(body, secret="lf-whsec_not-the-secret")
    elif case == "tampered body":
        body = body.replace(b'"version":2', b'"version":3')
    elif case == "stale timestamp":
        headers = signed(body, t=int(time.time()) - 301)
    elif case == "future timestamp":
        headers = signed(body, t=int(time.time()) + 301)
    elif case == "malformed header":
        headers["x-langfuse-signature"] = "sha256=abc"
    resp = asyncio.run(post(app, body, headers))
    assert resp.status_code == 401
    assert expected in resp.json()["error"]
    assert stamps.snapshot() == {} and slack.attempts == 0
    assert app.state.stats.rejected_signature == 1


def test_timestamp_just_inside_tolerance_is_accepted(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, tolerance_s=300)
    body = prompt_version_event(PROMPT)
    assert asyncio.run(post(app, body, signed(body, t=int(time.time()) - 290))).status_code == 200


def test_replayed_delivery_is_handled_once(tmp_path: Path) -> None:
    slack = RecordingSlack()
    app, stamps = make_app(tmp_path, slack=slack, slack_channel="#prompts")
    body = prompt_version_event(PROMPT, event_id="evt-1")
    retried_body = body  # Langfuse retries the same event (same id), signed again

    async def run() -> list[httpx.Response]:
        first = await post(app, body, signed(body))
        second = await post(app, retried_body, signed(retried_body, t=int(time.time()) + 1))
        third = await post(app, body, signed(body))
        await settle(app)
        return [first, second, third]

    first, second, third = asyncio.run(run())
    assert first.json()["status"] == "ok"
    assert second.status_code == third.status_code == 200
    assert second.json()["status"] == third.json()["status"] == "duplicate"
    assert stamps.snapshot() == {"judge": 1} and len(slack.posted) == 1


def test_oversized_body_is_refused_with_413(tmp_path: Path) -> None:
    app, stamps = make_app(tmp_path, max_body_bytes=2048)
    big = prompt_version_event({**PROMPT, "prompt": "x" * 4096})
    assert asyncio.run(post(app, big, signed(big))).status_code == 413

    async def chunked() -> httpx.Response:  # no content-length: the stream itself is capped
        async def gen() -> Any:
            for i in range(0, len(big), 512):
                yield big[i : i + 512]

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook") as client:
            return await client.post("/webhooks/langfuse", content=gen(), headers=signed(big))

    assert asyncio.run(chunked()).status_code == 413
    assert stamps.snapshot() == {} and app.state.stats.rejected_size == 2


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "evt-1", "type": "prompt-version", ',
        b"\xff\xfe not utf-8",
        b'["a list"]',
        json.dumps({"id": "evt-1", "type": "prompt-version", "action": "created", "prompt": {"version": 1}}).encode(),
        json.dumps({"type": "prompt-version", "action": "created", "prompt": {"name": "judge"}}).encode(),
    ],
    ids=["truncated JSON", "not UTF-8", "not an object", "prompt without name", "no event id"],
)
def test_malformed_payload_is_refused_with_400(tmp_path: Path, body: bytes) -> None:
    app, stamps = make_app(tmp_path)
    resp = asyncio.run(post(app, body, signed(body)))
    assert resp.status_code == 400
    assert stamps.snapshot() == {}


def test_unknown_action_or_type_is_acknowledged_and_ignored(tmp_path: Path) -> None:
    slack = RecordingSlack()
    app, stamps = make_app(tmp_path, slack=slack, slack_channel="#prompts")
    archived = prompt_version_event(PROMPT, "archived")
    other = json.dumps({**json.loads(prompt_version_event(PROMPT)), "type": "trace-created"}).encode()
    for body in (archived, other):
        resp = asyncio.run(post(app, body, signed(body)))
        assert resp.status_code == 200 and resp.json()["status"] == "ignored"
    assert stamps.snapshot() == {} and slack.attempts == 0


def test_slack_down_still_answers_2xx_at_once_and_the_alert_is_retried(tmp_path: Path) -> None:
    slack = RecordingSlack(failures=2, delay_s=0.2)
    app, stamps = make_app(tmp_path, slack=slack, slack_channel="#prompts")
    body = prompt_version_event(PROMPT)

    async def run() -> tuple[httpx.Response, float, int]:
        started = time.monotonic()
        resp = await post(app, body, signed(body))
        elapsed = time.monotonic() - started
        attempts_at_response = slack.attempts
        await settle(app)
        return resp, elapsed, attempts_at_response

    resp, elapsed, attempts_at_response = asyncio.run(run())
    assert resp.status_code == 200 and elapsed < 0.2  # the response never waited for Slack
    assert attempts_at_response <= 1
    assert slack.attempts == 3 and len(slack.posted) == 1
    assert app.state.stats.slack_sent == 1 and stamps.snapshot() == {"judge": 1}


def test_slack_down_through_the_real_slack_service(tmp_path: Path) -> None:
    """The fake Slack Web API answers 503 three times: SlackService and the webhook's retry get the alert out."""
    with SlackServer() as server:
        server.state.fail_next("chat.postMessage", status=503, times=3)
        settings = lf_settings(None, slack_bot_token=server.state.token, slack_api_url=server.url)
        service = SlackService(settings, max_retries=1, retry_backoff_s=0.01)
        app, _ = make_app(tmp_path, slack=service, slack_channel="C0PROMPTS")
        body = prompt_version_event(PROMPT)

        async def run() -> httpx.Response:
            resp = await post(app, body, signed(body))
            await settle(app, timeout_s=20)
            await service.aclose()
            return resp

        assert asyncio.run(run()).status_code == 200
        assert [p["channel"] for p in server.state.posted] == ["C0PROMPTS"]
        assert "judge" in server.state.posted[0]["text"]
        assert server.state.call_count("chat.postMessage") == 4


def test_notify_url_gets_a_retried_signed_post(tmp_path: Path) -> None:
    received: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(503 if len(received) < 3 else 204)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    app, _ = make_app(tmp_path, notify_url="http://hooks.internal/prompt-changed", http_client=client)
    body = prompt_version_event(PROMPT)

    async def run() -> httpx.Response:
        resp = await post(app, body, signed(body))
        await settle(app)
        return resp

    assert asyncio.run(run()).status_code == 200
    assert len(received) == 3 and app.state.stats.notify_sent == 1
    last = received[-1]
    assert last.content == body
    verify_signature(last.headers["x-langfuse-signature"], last.content, SECRET, tolerance_s=60)


def test_store_down_answers_503_so_langfuse_retries(tmp_path: Path) -> None:
    class FlakyStamps(StampFilePromptStamps):
        fail = True

        def bump(self, name: str) -> int:
            if self.fail:
                raise OSError("disk gone")
            return super().bump(name)

    stamps = FlakyStamps(tmp_path / "flaky.json")
    app, _ = make_app(tmp_path, invalidation=stamps)
    body = prompt_version_event(PROMPT, event_id="evt-9")
    assert asyncio.run(post(app, body, signed(body))).status_code == 503
    stamps.fail = False
    resp = asyncio.run(post(app, body, signed(body)))  # the retry is not mistaken for a duplicate
    assert resp.json()["status"] == "ok" and stamps.snapshot() == {"judge": 1}


def test_slow_store_does_not_block_the_event_loop(tmp_path: Path) -> None:
    class SlowStamps(StampFilePromptStamps):
        def bump(self, name: str) -> int:
            time.sleep(0.3)
            return super().bump(name)

    app, _ = make_app(tmp_path, invalidation=SlowStamps(tmp_path / "slow.json"))
    bodies = [prompt_version_event({**PROMPT, "name": f"p{i}"}) for i in range(3)]

    async def run() -> tuple[float, int]:
        started = time.monotonic()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook") as client:
            posts = [client.post("/webhooks/langfuse", content=b, headers=signed(b)) for b in bodies]
            health = client.get("/healthz")
            results = await asyncio.gather(*posts, health)
        return time.monotonic() - started, sum(r.status_code == 200 for r in results)

    elapsed, ok = asyncio.run(run())
    assert ok == 4 and elapsed < 0.8  # three 0.3 s bumps ran side by side


def test_healthz_answers(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook") as client:
            return await client.get("/healthz")

    resp = asyncio.run(run())
    assert resp.status_code == 200 and resp.json()["status"] == "ok"
    assert resp.json()["invalidation"].startswith("stamp file")


def test_no_secret_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="LANGFUSE_WEBHOOK_SECRET"):
        create_app(lf_settings(None))
