"""A persistent cache of judge answers, so reruns and backfills never pay twice.

The key is a hash of everything that determines the answer: base URL, model, prompt name and
version, call params (temperature, max_tokens, JSON mode, seed) and the rendered messages (which
contain the item's input). The value is the judge's raw answer and its usage; parsing and score
normalisation run again on a hit, so changing a threshold or a scale never needs a new call.
Only answers that parsed are stored: an error is retried by the next run.

The stored usage doubles as the judge's history: `prompt_stats` gives the output tokens a prompt's
answers have had and the characters per prompt token the model has shown, which is what the
budget reserves and the dry run estimates with.

SQLite (stdlib) in WAL mode: one file, survives restarts, safe for several processes on one host.
Lookups run in a worker thread so a slow disk never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS judge_cache (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    prompt_name TEXT,
    prompt_version TEXT,
    content TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    created_at REAL NOT NULL,
    prompt_chars INTEGER
)
"""

INDEX = "CREATE INDEX IF NOT EXISTS judge_cache_by_prompt ON judge_cache (model, prompt_name, created_at)"

COLUMNS = (
    "key",
    "model",
    "prompt_name",
    "prompt_version",
    "content",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "created_at",
    "prompt_chars",
)


@dataclass(frozen=True)
class PromptStats:
    """Totals over a prompt's most recent cached answers (prompt figures only where both are known)."""

    answers: int
    output_tokens: int
    prompt_chars: int
    input_tokens: int


@dataclass(frozen=True)
class CachedAnswer:
    content: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    created_at: float


def cache_key(**parts: Any) -> str:
    """A stable hash of the call's identity (sorted JSON, so dict order never matters)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    """Judge answers by key in one SQLite file (`:memory:` for tests)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.execute(SCHEMA)
            self._add_prompt_chars()
            self._conn.execute(INDEX)
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT content, input_tokens, output_tokens, cost_usd, created_at FROM judge_cache WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return CachedAnswer(*row)

    def _add_prompt_chars(self) -> None:
        """Caches written before `prompt_chars` existed gain the column (their old rows stay NULL)."""
        names = {row[1] for row in self._conn.execute("PRAGMA table_info(judge_cache)")}
        if "prompt_chars" in names:
            return
        try:
            self._conn.execute("ALTER TABLE judge_cache ADD COLUMN prompt_chars INTEGER")
        except sqlite3.OperationalError as exc:  # another process added it first
            if "duplicate column" not in str(exc):
                raise

    def contains(self, key: str) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM judge_cache WHERE key = ?", (key,)).fetchone() is not None

    def put(
        self,
        key: str,
        *,
        model: str,
        prompt_name: str | None,
        prompt_version: str | None,
        content: str,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        prompt_chars: int | None = None,
    ) -> None:
        values = (key, model, prompt_name, prompt_version, content, input_tokens, output_tokens, cost_usd, time.time())
        with self._lock:
            self._conn.execute(
                f"INSERT OR REPLACE INTO judge_cache ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                (*values, prompt_chars),
            )

    def prompt_stats(self, model: str, prompt_name: str, *, recent: int = 500) -> PromptStats:
        """Usage totals of the prompt's `recent` latest answers by this model (any prompt version)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(output_tokens), 0),"
                " COALESCE(SUM(CASE WHEN prompt_chars > 0 AND input_tokens > 0 THEN prompt_chars END), 0),"
                " COALESCE(SUM(CASE WHEN prompt_chars > 0 AND input_tokens > 0 THEN input_tokens END), 0)"
                " FROM (SELECT output_tokens, prompt_chars, input_tokens FROM judge_cache"
                " WHERE model = ? AND prompt_name = ? ORDER BY created_at DESC LIMIT ?)",
                (model, prompt_name, recent),
            ).fetchone()
        return PromptStats(*(int(v) for v in row))

    def recent_contents(self, model: str, prompt_name: str, *, recent: int = 200) -> list[str]:
        """The raw text of the prompt's latest answers (a composite learns its fan-out from them)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT content FROM judge_cache WHERE model = ? AND prompt_name = ? ORDER BY created_at DESC LIMIT ?",
                (model, prompt_name, recent),
            ).fetchall()
        return [str(row[0]) for row in rows]

    async def aget(self, key: str) -> CachedAnswer | None:
        return await asyncio.to_thread(self.get, key)

    async def aput(self, key: str, **fields: Any) -> None:
        await asyncio.to_thread(lambda: self.put(key, **fields))

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._conn.execute("SELECT COUNT(*) FROM judge_cache").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
