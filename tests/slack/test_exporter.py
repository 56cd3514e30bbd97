"""Exported threads read back through the file source score like live ones."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fakes.slack_server import SlackServer

from shared.errors import InvalidRecordError
from shared.monitoring.sources.base import build_source
from shared.settings import Settings
from shared.slack.exporter import export_threads
from shared.slack.thread import thread_to_item

from .workspace import LABELS, seed, window


def test_export_then_score_from_the_file(slack_server: SlackServer, slack_settings: Settings, tmp_path: Path) -> None:
    seed(slack_server.state)
    path = tmp_path / "threads.jsonl"
    count = asyncio.run(export_threads(slack_settings, ["C1", "C2"], window(), path))
    assert count == len(LABELS)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert {line["id"] for line in lines} == set(LABELS)
    assert all(line["timestamp"].endswith("Z") for line in lines)

    source = build_source("file", {"path": str(path)}, settings=Settings(), base_dir=tmp_path)

    async def read() -> list[object]:
        return [record async for record in source.fetch(window())]

    items = [thread_to_item(record) for record in asyncio.run(read())]
    assert {item.id for item in items} == set(LABELS)
    refund = next(i for i in items if i.query == "What is the refund policy?")
    assert [m.role for m in refund.conversation or []] == ["user", "assistant", "user"]
    assert refund.additional_output["feedback"]["negative"] == 1


def test_a_malformed_record_is_invalid_not_a_crash() -> None:
    with pytest.raises(InvalidRecordError):
        thread_to_item({"id": "C1:1", "channel": "C1"})
