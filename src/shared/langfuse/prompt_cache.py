"""Cross-process prompt-cache invalidation: a per-prompt version stamp that every process can read.

Why: the webhook app and the scheduler are different processes. When Langfuse tells the webhook that
a prompt changed, an in-memory `mark_stale` only helps the webhook's own process. So the webhook also
*bumps a stamp* for the prompt name in a store every process can see, and each `LangfusePromptManager`
reads the stamps (cheaply, at most once per `check_interval_s`) before serving from its cache. A cached
prompt whose recorded stamp differs from the current one is a miss.

Two stores:
- `PostgresPromptStamps`: a tiny table `evalmon_prompt_versions(name primary key, stamp, updated_at)`.
  Used when DATABASE_URL is set; works across hosts.
- `StampFilePromptStamps`: a JSON file `{name: stamp}` guarded by a file lock. For single-host setups
  (settings.prompt_cache_stamp).
Without either, invalidation stays process-local (`build_invalidation` returns None).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from filelock import FileLock

from shared.errors import ConfigError
from shared.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TABLE = "evalmon_prompt_versions"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@runtime_checkable
class PromptInvalidation(Protocol):
    """A shared store of per-prompt stamps. Implementations are synchronous and thread-safe."""

    def bump(self, name: str) -> int:
        """Advance the stamp of `name` and return the new value."""
        ...

    def snapshot(self) -> dict[str, int]:
        """Every known prompt name with its current stamp (names never bumped are absent: stamp 0)."""
        ...

    def describe(self) -> str:
        """A short, secret-free description for logs and docs ("postgres table x", "stamp file y")."""
        ...


class PostgresPromptStamps:
    """Stamps in a Postgres table; one connection, reopened after failures.

    The table is created on first use (`CREATE TABLE IF NOT EXISTS`), so no migration is needed
    for this one small table. `schema` and `table` let tests keep their own copy.
    """

    def __init__(self, dsn: str, *, table: str = DEFAULT_TABLE, schema: str | None = None, connect_timeout_s: int = 5):
        for ident in (table, schema):
            if ident is not None and not _IDENT.match(ident):
                raise ConfigError(f"invalid SQL identifier {ident!r}", field="prompt cache table")
        self._dsn = dsn
        self._table = table
        self._schema = schema
        self._qualified = f'"{schema}"."{table}"' if schema else f'"{table}"'
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._conn: Any = None
        self._ready = False

    def describe(self) -> str:
        return f"postgres table {self._qualified.replace(chr(34), '')}"

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._connect_timeout_s)
            self._ready = False
        if not self._ready:
            if self._schema:
                self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._qualified} ("
                " name text PRIMARY KEY, stamp bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
            )
            self._ready = True
        return self._conn

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; on a broken connection reconnect once and retry."""
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                try:
                    cur = self._connection().execute(sql, params)
                    return list(cur.fetchall()) if cur.description else []
                except psycopg.OperationalError:
                    self.close_unlocked()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    def bump(self, name: str) -> int:
        rows = self._run(
            f"INSERT INTO {self._qualified} AS t (name, stamp) VALUES (%s, 1)"
            " ON CONFLICT (name) DO UPDATE SET stamp = t.stamp + 1, updated_at = now() RETURNING stamp",
            (name,),
        )
        return int(rows[0][0])

    def snapshot(self) -> dict[str, int]:
        return {str(n): int(s) for n, s in self._run(f"SELECT name, stamp FROM {self._qualified}")}

    def close_unlocked(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken connection may fail too; nothing to do
                log.debug("closing prompt-stamp connection failed", exc_info=True)

    def close(self) -> None:
        with self._lock:
            self.close_unlocked()


class StampFilePromptStamps:
    """Stamps in a JSON file on local disk, written atomically under a file lock.

    Readers stat the file first and re-parse it only when it changed (inode, size or mtime), so a
    check is one `stat` call in the common case.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self._path = Path(path)
        self._lock = FileLock(str(self._path) + ".lock", timeout=10)
        self._mutex = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._cached: dict[str, int] = {}

    @property
    def path(self) -> Path:
        return self._path

    def describe(self) -> str:
        return f"stamp file {self._path}"

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8") or "{}")
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError:
            log.warning("prompt stamp file %s is not valid JSON; treating it as empty", self._path)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): int(v) for k, v in data.items() if isinstance(v, int | float)}

    def bump(self, name: str) -> int:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            stamps = self._read()
            stamps[name] = stamps.get(name, 0) + 1
            fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=self._path.name, suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(stamps, fh, sort_keys=True)
                os.replace(tmp, self._path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return stamps[name]

    def snapshot(self) -> dict[str, int]:
        with self._mutex:
            try:
                st = self._path.stat()
            except FileNotFoundError:
                self._seen, self._cached = None, {}
                return {}
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            if key != self._seen:
                self._cached = self._read()
                self._seen = key
            return dict(self._cached)


def build_invalidation(settings: Settings) -> PromptInvalidation | None:
    """The shared stamp store the settings ask for: Postgres if DATABASE_URL, else the stamp file, else None."""
    if settings.database_url is not None and settings.database_url.get_secret_value():
        return PostgresPromptStamps(settings.database_url.get_secret_value())
    if settings.prompt_cache_stamp:
        return StampFilePromptStamps(settings.prompt_cache_stamp)
    return None
