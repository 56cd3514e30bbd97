"""Slack source figures: threads/s through slack_sdk against the loopback fake, by reply concurrency.

Each thread with replies costs one `conversations.replies` call; the fake answers after a fixed
delay (standing in for Slack's latency), so the figures show what `max_concurrency` buys. The
fake runs in a thread of this process, so each call also pays for the GIL hand-over (tens of ms
on a busy machine): read the ratio between rows, not the absolute rates.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

THREADS = 200
REPLY_DELAY_S = 0.02
T0 = 1_763_000_000


def main() -> None:
    from datetime import UTC, datetime, timedelta

    from shared.monitoring.sources.base import build_source
    from shared.monitoring.window import Window
    from shared.settings import Settings
    from shared.slack.source import SlackDataSource
    from shared.slack.thread import thread_to_item
    from tests.fakes.slack_server import SlackServer

    with SlackServer() as server:
        state = server.state
        state.replies_delay_s = REPLY_DELAY_S
        for i in range(THREADS):
            ts = f"{T0 + i:.6f}"
            state.add_thread(
                "C1",
                [
                    {"ts": ts, "user": "U1", "text": f"question {i}"},
                    {"ts": f"{T0 + i + 0.5:.6f}", "bot_id": state.bot_id, "text": "answer"},
                ],
            )
        settings = Settings(slack_bot_token=state.token, slack_api_url=server.url)
        base = datetime.fromtimestamp(T0, UTC)
        window = Window(since=base - timedelta(seconds=1), until=base + timedelta(seconds=THREADS + 1), explicit=True)
        print(f"{THREADS} threads, replies answered after {REPLY_DELAY_S * 1000:.0f} ms")
        for concurrency in (1, 8, 32):
            source = build_source(
                "slack", {"channels": ["C1"], "max_concurrency": concurrency}, settings=settings, base_dir=Path.cwd()
            )
            assert isinstance(source, SlackDataSource)

            async def run(source: SlackDataSource = source) -> int:
                count = 0
                try:
                    async for thread in source.fetch(window):
                        thread_to_item(thread)
                        count += 1
                    return count
                finally:
                    await source.aclose()

            started = time.perf_counter()
            count = asyncio.run(run())
            elapsed = time.perf_counter() - started
            print(
                f"max_concurrency={concurrency:>2}: {count} threads in {elapsed:.2f}s = {count / elapsed:,.0f} threads/s"
            )
