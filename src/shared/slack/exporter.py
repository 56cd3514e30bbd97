"""Export Slack threads to JSON Lines, for notebooks and for scoring offline.

Each line is a `SlackThread` plus `id` (`<channel>:<thread_ts>`) and `timestamp` (ISO 8601 of the
question), so the file source reads it back as is:

    source: {type: file, path: data/slack-threads.jsonl}
    extractor: shared.slack.thread:thread_to_item

The export goes through `SlackDataSource`, so it applies the same window, filters and assistant
identity as a live monitor would; records are written as they arrive (bounded memory).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.monitoring.window import Window, iso
from shared.settings import Settings
from shared.slack.service import SlackService
from shared.slack.source import SlackDataSource, SlackSourceParams
from shared.slack.thread import SlackThread, ts_to_datetime


def thread_record(thread: SlackThread) -> dict[str, Any]:
    """A thread as one JSON-ready mapping, with the id and timestamp the file source looks for."""
    started = ts_to_datetime(thread.thread_ts)
    return {"id": thread.item_id, "timestamp": iso(started) if started else None, **thread.model_dump(mode="json")}


async def export_threads(
    settings: Settings,
    channels: Sequence[str],
    window: Window,
    path: Path,
    *,
    service: SlackService | None = None,
    **params: Any,
) -> int:
    """Write the window's threads of `channels` to `path` (JSON Lines); return how many."""
    source = SlackDataSource(
        SlackSourceParams(channels=list(channels), **params),
        settings=settings,
        base_dir=Path.cwd(),
        service=service,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    tmp = path.with_name(path.name + ".part")
    try:
        with tmp.open("w", encoding="utf-8") as out:
            async for thread in source.fetch(window):
                out.write(json.dumps(thread_record(thread), ensure_ascii=False) + "\n")
                written += 1
        tmp.replace(path)  # a reader never sees half an export
    finally:
        tmp.unlink(missing_ok=True)
        await source.aclose()
    return written
