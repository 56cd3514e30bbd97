"""The Slack fake's file upload, as slack_sdk's files_upload_v2 uses it, and as Slack refuses misuse."""

from __future__ import annotations

import urllib.request

import pytest
from fakes.slack_server import SlackServer
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError


def client(server: SlackServer) -> WebClient:
    return WebClient(token=server.state.token, base_url=server.url)


def test_files_upload_v2_shares_the_file_in_a_thread_by_channel_id(slack_server: SlackServer) -> None:
    web = client(slack_server)
    posted = web.chat_postMessage(channel="#evals", text="report")
    channel = posted["channel"]
    assert channel.startswith("C") and channel == slack_server.state.channel_ids["evals"]  # a name answers with the id
    done = web.files_upload_v2(channel=channel, thread_ts=posted["ts"], content=b"chart bytes", filename="c.png")
    assert done["file"]["name"] == "c.png"
    [upload] = slack_server.state.uploads.values()
    assert upload["data"] == b"chart bytes" and upload["thread_ts"] == posted["ts"]
    replies = web.conversations_replies(channel=channel, ts=posted["ts"])["messages"]
    assert replies[-1]["files"][0]["id"] == done["file"]["id"]


def error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as caught:
        call()  # type: ignore[operator]
    return str(caught.value.response["error"])


def test_uploads_slack_would_refuse_are_refused(slack_server: SlackServer) -> None:
    web = client(slack_server)
    assert error_of(lambda: web.api_call("files.getUploadURLExternal", params={"filename": "a.png"})) == (
        "invalid_arguments"  # no length
    )
    started = web.files_getUploadURLExternal(filename="a.png", length=5)
    file_id = started["file_id"]
    complete = lambda **kw: web.files_completeUploadExternal(files=[{"id": file_id}], **kw)  # noqa: E731
    assert error_of(complete) == "file_not_found"  # nothing uploaded yet
    request = urllib.request.Request(started["upload_url"], data=b"1234", method="POST")
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 200 and answer.read() == b"OK - 4"
    assert error_of(complete) == "file_upload_size_mismatch"  # 4 bytes uploaded, 5 announced
    urllib.request.urlopen(urllib.request.Request(started["upload_url"], data=b"12345", method="POST")).close()
    assert error_of(lambda: complete(thread_ts="1.2")) == "invalid_arguments"  # a thread needs its channel
    assert error_of(lambda: complete(channel_id="#evals")) == "channel_not_found"  # ids only
    assert complete(channel_id="C0EVALS")["files"][0]["id"] == file_id
    assert error_of(complete) == "file_not_found"  # once only
    assert slack_server.state.uploads[file_id]["channel"] == "C0EVALS"
