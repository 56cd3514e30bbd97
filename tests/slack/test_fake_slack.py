"""The fake Slack accepts what Slack accepts: form, JSON or query arguments, Bearer or form token."""

from __future__ import annotations

import asyncio
from typing import Any

from fakes.slack_server import SlackServer
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient


def test_argument_encodings_and_auth(slack_server: SlackServer) -> None:
    token = slack_server.state.token

    async def go() -> list[Any]:
        client = AsyncWebClient(token=token, base_url=slack_server.url)
        anonymous = AsyncWebClient(base_url=slack_server.url)
        out: list[Any] = []
        out.append((await client.api_call("chat.postMessage", data={"channel": "C1", "text": "form"}))["ok"])
        out.append((await client.api_call("chat.postMessage", json={"channel": "C1", "text": "json"}))["ok"])
        out.append((await anonymous.api_call("auth.test", data={"token": token}))["user_id"])
        for call in (
            anonymous.auth_test(),
            client.api_call("chat.postMessage", data={"channel": "C1"}),
            client.conversations_history(channel="C1", cursor="garbage!"),
        ):
            try:
                await call
            except SlackApiError as exc:
                out.append(exc.response["error"])
        return out

    assert asyncio.run(go()) == [True, True, "UBOT", "not_authed", "no_text", "invalid_cursor"]
    assert [m["text"] for m in slack_server.state.posted] == ["form", "json"]
