"""Run leases: how evalmon processes sharing a database tell a live run from a dead one.

A run that takes claims (`dedup.store: postgres`) or writes a `running` row (`publish.postgres`)
holds one row in `run_leases` and renews it from a background thread every `ttl / 5`. A thread,
not an asyncio task, so a busy event loop (a long CPU-bound metric) never lets the lease lapse.
The Postgres sink and ledger of one run share one lease (`hold` counts its users).

A run is live while its lease has not expired. On top of that, `reap` checks leases held by a
process on this machine (same boot id and pid namespace) against the process table and deletes
them at once when that process is gone, so a worker killed with SIGKILL frees its claims for the
very next run rather than `ttl` later. Across machines, the expiry decides.

DATAFLOW:
    hold(...)     -> upsert the lease row (thread) -> heartbeat thread renews it until release()
    reap(conn, m) -> leases of monitor m that expired or whose local process is gone
                  -> deleted with their claims (one transaction: the caller's)
    release()     -> last user: stop the heartbeat, delete the row
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import psycopg

from shared.database.connection import connect, describe_error, schema_name, sync_transaction
from shared.settings import Settings

log = logging.getLogger(__name__)

_UPSERT = """
INSERT INTO run_leases AS l (run_id, monitor, source_key, host, pid, process_ns, process_start, expires_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))
ON CONFLICT (run_id) DO UPDATE SET renewed_at = now(), expires_at = EXCLUDED.expires_at
RETURNING (xmax = 0) AS inserted
"""
_DELETE = "DELETE FROM run_leases WHERE run_id = %s"
_LEASES_OF = """
SELECT run_id, pid, process_ns, process_start, expires_at < now() AS expired
FROM run_leases WHERE monitor = %s
"""
_DELETE_DEAD = """
DELETE FROM run_leases WHERE run_id = ANY(%s::text[]) AND (expires_at < now() OR run_id = ANY(%s::text[]))
RETURNING run_id
"""
_DELETE_CLAIMS = "DELETE FROM item_claims WHERE monitor = %s AND run_id = ANY(%s::text[])"
# A renewal never waits long: a stuck lock surfaces as a logged failure, and the next beat retries.
_LOCAL = "SELECT set_config('lock_timeout', '5s', true), set_config('statement_timeout', '10s', true)"


@dataclass(frozen=True)
class ProcessIdentity:
    """Enough to find a process again: pid, its start time, and the pid namespace it lives in."""

    host: str
    pid: int
    namespace: str | None  # None where /proc is missing (not Linux): then only the expiry counts
    start: int | None


@cache
def this_process() -> ProcessIdentity:
    # Cached: a forked child is a new process only after exec, and evalmon workers are started with exec.
    pid = os.getpid()
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        namespace = f"{boot_id}/{os.readlink('/proc/self/ns/pid')}"
        start = _start_ticks(pid)
    except (OSError, ValueError):
        namespace, start = None, None
    return ProcessIdentity(socket.gethostname(), pid, namespace, start)


def _start_ticks(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat (start time since boot); raises OSError when there is no such process."""
    fields = _stat_after_name(pid)
    return int(fields[19])


def _stat_after_name(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    return text[text.rindex(")") + 2 :].split()  # the name (field 2) may hold spaces and parentheses


def process_alive(pid: int, start: int | None) -> bool:
    """Is the process `pid` that started at `start` still running (in this pid namespace)?"""
    try:
        fields = _stat_after_name(pid)
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # cannot tell: let the lease expiry decide
    if fields[0] in ("Z", "X"):  # killed, waiting for its parent to collect it
        return False
    return start is None or fields[19] == str(start)


class RunLease:
    """One run's lease row and the thread that renews it."""

    def __init__(self, settings: Settings, *, run_id: str, monitor: str, source_key: str, ttl_s: float) -> None:
        self.settings = settings
        self.schema = schema_name(settings)
        self.run_id = run_id
        self.monitor = monitor
        self.source_key = source_key
        self.ttl_s = float(ttl_s)
        self.renew_every_s = max(self.ttl_s / 5.0, 0.05)
        self.lapses = 0  # renewals that found the lease gone: other workers may have taken its claims
        self._users = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    # -- users --------------------------------------------------------------------------------
    def acquire(self) -> None:
        """First user: write the lease (raises psycopg.Error when it cannot) and start renewing."""
        with self._lock:
            if self._users == 0:
                self._write()
                self._stop.clear()
                self._thread = threading.Thread(target=self._beat, name=f"evalmon-lease-{self.run_id}", daemon=True)
                self._thread.start()
            self._users += 1

    def release(self) -> bool:
        """Last user: stop renewing and delete the lease. True when the lease is gone."""
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users:
                return False
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=30)
                self._thread = None
            try:
                with self._connection() as conn, sync_transaction(conn, self.schema):
                    conn.execute(_LOCAL)
                    conn.execute(_DELETE, [self.run_id])
            except psycopg.Error as exc:  # it expires on its own
                log.warning("run lease %s: could not delete it: %s", self.run_id, describe_error(exc, self.settings))
            finally:
                self._disconnect()
            return True

    # -- heartbeat ----------------------------------------------------------------------------
    def _beat(self) -> None:
        while not self._stop.wait(self.renew_every_s):
            try:
                if self._write():
                    self.lapses += 1
                    log.warning(
                        "run lease %s had lapsed (no renewal for %gs); other workers may have taken its claims",
                        self.run_id,
                        self.ttl_s,
                    )
            except psycopg.Error as exc:  # a missed beat is not fatal: the lease lasts five beats
                log.warning("run lease %s: renewal failed: %s", self.run_id, describe_error(exc, self.settings))
                self._disconnect()

    def _write(self) -> bool:
        """Upsert the lease row; True when it had to be created (first write, or after it lapsed)."""
        me = this_process()
        conn = self._connection()
        with sync_transaction(conn, self.schema):
            conn.execute(_LOCAL)
            row = conn.execute(
                _UPSERT,
                [self.run_id, self.monitor, self.source_key, me.host, me.pid, me.namespace, me.start, self.ttl_s],
            ).fetchone()
        return bool(row and row[0]) and self._thread is not None

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.settings)
        return self._conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


_held: dict[tuple[str, str], RunLease] = {}
_held_lock = threading.Lock()


async def hold(settings: Settings, *, run_id: str, monitor: str, source_key: str, ttl_s: float) -> RunLease:
    """This run's lease, written and renewed from now on; pair every call with `let_go`."""
    key = (schema_name(settings), run_id)
    with _held_lock:
        lease = _held.setdefault(
            key, RunLease(settings, run_id=run_id, monitor=monitor, source_key=source_key, ttl_s=ttl_s)
        )
    try:
        await asyncio.to_thread(lease.acquire)
    except BaseException:
        with _held_lock:
            if lease._users == 0 and _held.get(key) is lease:
                del _held[key]
        raise
    return lease


async def let_go(lease: RunLease) -> None:
    """Drop one user of the lease; the last one deletes it."""
    if await asyncio.to_thread(lease.release):
        with _held_lock:
            if _held.get((lease.schema, lease.run_id)) is lease:
                del _held[(lease.schema, lease.run_id)]


async def reap(conn: psycopg.AsyncConnection[Any], monitor: str, *, keep: str | None = None) -> list[str]:
    """Delete the leases (and claims) of `monitor`'s runs that are known dead; return their run ids.

    Dead: the lease expired, or its process ran on this machine and is gone. `keep` (the caller's
    own run) is never touched. Runs in the caller's transaction.
    """
    me = this_process()
    cur = await conn.execute(_LEASES_OF, [monitor])
    candidates: list[str] = []
    gone_here: list[str] = []
    for run_id, pid, namespace, start, expired in await cur.fetchall():
        if run_id == keep:
            continue
        local = me.namespace is not None and namespace == me.namespace and isinstance(pid, int)
        if expired:
            candidates.append(str(run_id))
        elif local and not process_alive(int(pid), start if isinstance(start, int) else None):
            candidates.append(str(run_id))
            gone_here.append(str(run_id))
    if not candidates:
        return []
    cur = await conn.execute(_DELETE_DEAD, [candidates, gone_here])
    dead = sorted(str(row[0]) for row in await cur.fetchall())
    if dead:
        await conn.execute(_DELETE_CLAIMS, [monitor, dead])
    return dead
