"""Webhook edges: stalled clients get a 408, a client that hangs up is one log line, and Slack text
built from what someone typed in Langfuse can neither ping a channel nor break its formatting."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakes.langfuse_prompts import langfuse_signature, prompt_version_event
from fakes.loopback import LoopbackServer
from fakes.slack_server import SlackServer
from starlette.applications import Starlette

from shared.langfuse.prompt_cache import StampFilePromptStamps
from shared.langfuse.webhook import WEBHOOK_PATH, create_app
from shared.slack.service import SlackService

from .conftest import SECRET, lf_settings

BODY_TIMEOUT_S = 0.5


class Records(logging.Handler):
    """Every record of the webhook's and uvicorn's loggers, whatever their propagation settings."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def log_records() -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("shared.langfuse.webhook", "uvicorn.error", "uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def make_app(tmp_path: Path, **kwargs: object) -> tuple[Starlette, StampFilePromptStamps]:
    stamps = StampFilePromptStamps(tmp_path / "stamps.json")
    app = create_app(
        lf_settings(None, langfuse_webhook_secret=SECRET),
        invalidation=stamps,
        body_timeout_s=BODY_TIMEOUT_S,
        retry_initial_s=0.01,
        **kwargs,  # type: ignore[arg-type]
    )
    return app, stamps


def partial_request(port: int, sent: bytes, declared: int) -> socket.socket:
    """A POST that declares `declared` body bytes and sends only `sent`."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}Content-Length: {declared}\r\n\r\n".encode() + sent)
    return sock


def read_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_stalled_client_gets_408_and_the_connection_is_closed(tmp_path: Path, log_records: Records) -> None:
    app, stamps = make_app(tmp_path)
    with LoopbackServer(app) as server:
        sock = partial_request(server.port, b'{"id": "evt', declared=400)
        started = time.monotonic()
        answer = read_until_closed(sock, timeout_s=5)  # returns only because the server closes
        elapsed = time.monotonic() - started
        sock.close()
        with httpx.Client() as client:  # the server is still there for the next delivery
            assert client.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"body not received within 0.5s" in answer
    assert BODY_TIMEOUT_S <= elapsed < BODY_TIMEOUT_S + 2
    assert app.state.stats.rejected_timeout == 1 and stamps.snapshot() == {}
    assert not any(r.exc_info for r in log_records.records)


def test_a_client_that_hangs_up_mid_body_is_one_log_line(tmp_path: Path, log_records: Records) -> None:
    app, stamps = make_app(tmp_path)
    with LoopbackServer(app) as server:
        partial_request(server.port, b'{"id": "evt', declared=400).close()
        deadline = time.monotonic() + 5
        while app.state.stats.client_disconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert app.state.stats.client_disconnects == 1 and stamps.snapshot() == {}
    warnings = [r for r in log_records.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "webhook: client disconnected after 11 of 400 body bytes; nothing done"
    ]
    assert not any(r.exc_info for r in log_records.records)


def test_slack_text_is_escaped_and_the_prompt_name_is_code(tmp_path: Path) -> None:
    prompt = {
        "name": "<!channel> & `judge`",
        "version": 3,
        "labels": ["<@U123>"],
        "type": "text",
        "prompt": "Rate {{a}}",
        "commitMessage": "see <https://evil.example|this> & <!here>",
    }
    with SlackServer() as slack_server:
        settings = lf_settings(None, slack_bot_token=slack_server.state.token, slack_api_url=slack_server.url)
        service = SlackService(settings, max_retries=0)
        app, _ = make_app(tmp_path, slack=service, slack_channel="C0PROMPTS")
        body = prompt_version_event(prompt)

        async def deliver() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://webhook") as client:
                headers = {"content-type": "application/json", "x-langfuse-signature": langfuse_signature(body, SECRET)}
                resp = await client.post(WEBHOOK_PATH, content=body, headers=headers)
            deadline = time.monotonic() + 10
            while app.state.background.tasks and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await service.aclose()
            return resp

        assert asyncio.run(deliver()).status_code == 200
        [message] = slack_server.state.posted
    text = message["text"]
    assert "Langfuse prompt `&lt;!channel&gt; &amp; \u02cbjudge\u02cb` version 3 created" in text
    assert "(labels: &lt;@U123&gt;)" in text
    blocks = message["blocks"] if isinstance(message["blocks"], str) else json.dumps(message["blocks"])
    assert "see &lt;https://evil.example|this&gt; &amp; &lt;!here&gt;" in blocks
    for raw in ("<!channel>", "<!here>", "<@U123>", "<https://evil"):
        assert raw not in text and raw not in blocks
