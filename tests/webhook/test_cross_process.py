"""A signed delivery to the webhook makes the next prompt fetch in *another process* miss its cache.

The other process stands for the scheduler: a LangfusePromptManager with a long TTL, started as a
subprocess, talking to the same fake Langfuse and the same shared stamp store (Postgres table, or a
stamp file for single-host setups). Also: `evalmon webhook serve` starts and answers /healthz.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.langfuse_prompts import FakeLangfusePrompts, langfuse_signature, prompt_version_event

from shared.langfuse.prompt_cache import PostgresPromptStamps, PromptInvalidation, StampFilePromptStamps
from shared.langfuse.webhook import create_app

from .conftest import SECRET, lf_settings

CHILD = textwrap.dedent(
    """
    import json, sys
    from shared.langfuse.prompt import LangfusePromptManager
    from shared.langfuse.prompt_cache import PostgresPromptStamps, StampFilePromptStamps
    from shared.settings import Settings

    cfg = json.loads(sys.argv[1])
    store = (PostgresPromptStamps(cfg["dsn"], schema=cfg["schema"]) if cfg.get("dsn")
             else StampFilePromptStamps(cfg["stamp_file"]))
    settings = Settings(_env_file=None, langfuse_base_url=cfg["url"], langfuse_public_key=cfg["pk"],
                        langfuse_secret_key=cfg["sk"], database_url=None, prompt_cache_stamp=None)
    manager = LangfusePromptManager(settings, ttl_s=3600, invalidation=store, check_interval_s=0, max_retries=0)
    print("ready", flush=True)
    for line in sys.stdin:
        p = manager.get(line.strip())
        print(json.dumps({"version": p.version, "prompt": p.prompt, "misses": manager.stats.misses,
                          "hits": manager.stats.hits}), flush=True)
    """
)


class Child:
    """The 'scheduler' process: one prompt name in on stdin, one JSON line out."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def get(self, name: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


def deliver(store: PromptInvalidation, prompt: dict[str, Any]) -> httpx.Response:
    app = create_app(lf_settings(None, langfuse_webhook_secret=SECRET), invalidation=store)
    body = prompt_version_event(prompt, "updated")

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook") as client:
            return await client.post(
                "/webhooks/langfuse",
                content=body,
                headers={"content-type": "application/json", "x-langfuse-signature": langfuse_signature(body, SECRET)},
            )

    return asyncio.run(run())


def scenario(store: PromptInvalidation, child_cfg: dict[str, Any]) -> None:
    with FakeLangfusePrompts() as langfuse:
        langfuse.add("judge", "v1", labels=["production"])
        child = Child({"url": langfuse.url, "pk": langfuse.public_key, "sk": langfuse.secret_key, **child_cfg})
        try:
            assert child.get("judge") == {"version": 1, "prompt": "v1", "misses": 1, "hits": 0}
            v2 = langfuse.add("judge", "v2", labels=["production"])  # changed in Langfuse...
            assert child.get("judge")["version"] == 1  # ...but the other process serves its cache
            gets_before = langfuse.gets("judge")

            assert deliver(store, v2).json()["status"] == "ok"

            after = child.get("judge")
            assert after["version"] == 2 and after["prompt"] == "v2"
            assert after["misses"] == 2 and langfuse.gets("judge") == gets_before + 1
            assert child.get("judge")["hits"] == 2  # and it caches the new version again
        finally:
            child.close()


def test_webhook_invalidates_another_process_via_postgres(pg_url: str, pg_schema: str) -> None:
    store = PostgresPromptStamps(pg_url, schema=pg_schema)
    try:
        scenario(store, {"dsn": pg_url, "schema": pg_schema})
        assert store.snapshot() == {"judge": 1}
    finally:
        store.close()


def test_webhook_invalidates_another_process_via_stamp_file(tmp_path: Path) -> None:
    path = tmp_path / "prompt-stamps.json"
    scenario(StampFilePromptStamps(path), {"stamp_file": str(path)})


def test_postgres_stamps_survive_a_dropped_connection(pg_url: str, pg_schema: str) -> None:
    store = PostgresPromptStamps(pg_url, schema=pg_schema)
    try:
        assert store.bump("a") == 1
        store._conn.close()  # e.g. the server restarted between webhooks
        assert store.bump("a") == 2 and store.snapshot() == {"a": 2}
    finally:
        store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    stamp = tmp_path / "stamps.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "SLACK_")) and k != "DATABASE_URL"}
    env.update(LANGFUSE_WEBHOOK_SECRET=SECRET, PROMPT_CACHE_STAMP=str(stamp))
    evalmon = Path(sys.executable).with_name("evalmon")
    cmd = [str(evalmon)] if evalmon.exists() else [sys.executable, "-m", "shared.cli"]
    proc = subprocess.Popen(
        [*cmd, "webhook", "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"evalmon webhook serve did not come up: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.1)
        yield base, stamp
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_evalmon_webhook_serve_answers_healthz_and_signed_deliveries(served: tuple[str, Path]) -> None:
    base, stamp = served
    health = httpx.get(f"{base}/healthz", timeout=5).json()
    assert health["status"] == "ok" and health["invalidation"] == f"stamp file {stamp}"

    with FakeLangfusePrompts() as langfuse:  # Langfuse's automation calls our webhook over HTTP
        langfuse.subscribe(f"{base}/webhooks/langfuse", SECRET)
        langfuse.add("judge", "v1", labels=["production"])
        langfuse.set_labels("judge", 1, ["staging"])
    assert langfuse.deliveries == [200, 200]
    assert StampFilePromptStamps(stamp).snapshot() == {"judge": 2}
    unsigned = httpx.post(f"{base}/webhooks/langfuse", content=b"{}", timeout=5)
    assert unsigned.status_code == 401
