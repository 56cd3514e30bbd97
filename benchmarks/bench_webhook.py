"""Webhook and prompt-cache figures: signed deliveries per second and the cost of a cache hit.

- deliveries/s through the ASGI app (signature check, JSON parse, dedup, stamp-file bump), in-process.
- prompt cache hit latency with the shared stamp checked on every call (check_interval_s=0) and at
  the default interval, against a stub client (no network: this measures our overhead only).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from shared.langfuse.prompt import LangfusePromptManager
from shared.langfuse.prompt_cache import StampFilePromptStamps
from shared.langfuse.webhook import create_app
from shared.settings import Settings

SECRET = "lf-whsec_bench"
DELIVERIES = 2_000
GETS = 50_000


def _signed(body: bytes) -> dict[str, str]:
    t = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-langfuse-signature": f"t={t},v1={digest}"}


def deliveries(workdir: Path) -> float:
    settings = Settings(_env_file=None, langfuse_webhook_secret=SECRET, database_url=None)
    app = create_app(settings, invalidation=StampFilePromptStamps(workdir / "stamps.json"))
    bodies = [
        json.dumps(
            {
                "id": str(uuid.uuid4()),
                "type": "prompt-version",
                "apiVersion": "v1",
                "action": "updated",
                "prompt": {"name": f"p{i % 20}", "version": i, "labels": ["production"], "prompt": "x" * 2000},
            },
            separators=(",", ":"),
        ).encode()
        for i in range(DELIVERIES)
    ]

    async def run() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            started = time.perf_counter()
            for body in bodies:
                resp = await client.post("/webhooks/langfuse", content=body, headers=_signed(body))
                assert resp.status_code == 200
            return time.perf_counter() - started

    return DELIVERIES / asyncio.run(run())


class _StubPrompt:
    name = "judge"
    version = 1
    config: dict[str, Any] = {}  # noqa: RUF012
    labels = ("production",)
    prompt = "Rate {{answer}}"


class _StubClient:
    def get_prompt(self, name: str, **kwargs: Any) -> _StubPrompt:
        return _StubPrompt()


def cache_hit_us(workdir: Path, check_interval_s: float) -> float:
    settings = Settings(_env_file=None, database_url=None)
    stamps = StampFilePromptStamps(workdir / "hits.json")
    stamps.bump("judge")
    manager = LangfusePromptManager(
        settings, client=_StubClient(), invalidation=stamps, check_interval_s=check_interval_s, ttl_s=3600
    )
    manager.get("judge")
    started = time.perf_counter()
    for _ in range(GETS):
        manager.get("judge")
    return (time.perf_counter() - started) / GETS * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"webhook: {deliveries(work):,.0f} signed deliveries/s (in-process ASGI, stamp file bump each)")
        print(f"prompt cache hit, stamps checked every call: {cache_hit_us(work, 0):.1f} us")
        print(f"prompt cache hit, default 2 s check interval: {cache_hit_us(work, 2.0):.1f} us")


if __name__ == "__main__":
    main()
