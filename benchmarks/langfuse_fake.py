"""The loopback fake Langfuse in a child process, with adjustable latency, for honest benchmarks.

In-process, the fake's request handling would share the client's interpreter (and GIL), so a
benchmark could not tell client CPU from server CPU. Here the server runs in its own process;
the parent drives it through a pipe: seed, set latency, count requests, response bytes, scores.

Latency is added by an ASGI wrapper (every route waits `latency_s` before it answers, in
parallel for concurrent requests), so the fake itself stays as the tests use it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"


def with_event(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """generate_traces' three observations per trace plus a small EVENT: four per trace."""
    for row in rows:
        yield row
        if row["type"] == "GENERATION":
            start = datetime.fromisoformat(row["endTime"].replace("Z", "+00:00"))
            yield {
                **row,
                "id": row["id"][:8] + "e" * 8,
                "type": "EVENT",
                "name": "feedback-shown",
                "startTime": (start + timedelta(milliseconds=10)).isoformat(),
                "endTime": None,
                "input": None,
                "output": {"shown": True},
                "usageDetails": None,
                "providedModelName": None,
                "promptName": None,
                "promptVersion": None,
                "metadata": {},
            }


class LatencyCounter:
    """ASGI wrapper: waits `latency_s` before each request and counts response body bytes."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.latency_s = 0.0
        self.response_bytes = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.latency_s:
            await asyncio.sleep(self.latency_s)

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                self.response_bytes += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counting_send)


def _serve(conn: Any) -> None:
    """Child process: run the fake and answer commands until told to stop."""
    sys.path.insert(0, str(TESTS_DIR))
    from fakes.langfuse_server import FakeLangfuse, generate_traces

    wrapper: LatencyCounter | None = None

    class SlowFake(FakeLangfuse):
        def app(self) -> Any:
            nonlocal wrapper
            wrapper = LatencyCounter(super().app())
            return wrapper

    with SlowFake() as fake:
        assert wrapper is not None
        conn.send({"url": fake.url, "public_key": fake.public_key, "secret_key": fake.secret_key})
        while True:
            command, args = conn.recv()
            if command == "stop":
                conn.send(None)
                return
            if command == "seed":
                n, since, until = args
                fake.seed_observations(with_event(generate_traces(n, since=since, until=until)))
                conn.send(len(fake.state.observations))
            elif command == "latency":
                wrapper.latency_s = float(args)
                conn.send(None)
            elif command == "reset":
                fake.reset_counters()
                wrapper.response_bytes = 0
                conn.send(None)
            elif command == "counters":
                conn.send({"requests": dict(fake.requests), "response_bytes": wrapper.response_bytes})
            elif command == "scores_named":
                conn.send(sum(1 for s in fake.scores() if s["name"] == args))
            elif command == "clear_scores":
                with fake._lock:
                    fake.state.scores.clear()
                conn.send(None)
            else:
                conn.send(ValueError(f"unknown command {command!r}"))


class FakeLangfuseProcess:
    """`with FakeLangfuseProcess() as fake:` a fake Langfuse in a child process."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), daemon=True)
        self.url = self.public_key = self.secret_key = ""

    def __enter__(self) -> FakeLangfuseProcess:
        self._process.start()
        info = self._conn.recv()
        self.url, self.public_key, self.secret_key = info["url"], info["public_key"], info["secret_key"]
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._call("stop")
        finally:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.terminate()

    def _call(self, command: str, args: Any = None) -> Any:
        self._conn.send((command, args))
        answer = self._conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def seed(self, n: int, since: datetime, until: datetime) -> int:
        """Seed n traces of four observations; returns the number of observations held."""
        return int(self._call("seed", (n, since, until)))

    def set_latency(self, seconds: float) -> None:
        self._call("latency", seconds)

    def reset_counters(self) -> None:
        self._call("reset")

    def counters(self) -> dict[str, Any]:
        return dict(self._call("counters"))

    def scores_named(self, name: str) -> int:
        return int(self._call("scores_named", name))

    def clear_scores(self) -> None:
        self._call("clear_scores")
