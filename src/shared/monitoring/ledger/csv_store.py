"""The CSV ledger: append-only dedup state for one machine (architecture.md section 3).

Concurrency: a run holds an exclusive per-monitor lock file for its whole length, so two runs of
one monitor never interleave; a second run WAITS up to `dedup.lock_timeout_s` (default 600 s) and
then fails with a clear message. Waiting suits cron and the scheduler: the second run then finds
the first run's work recorded and scores only what is left. Appends from different monitors
sharing one file go through a short global append lock, one write per batch.

Crash safety: entries are appended only after publishing; a crash mid-append leaves at most a
torn last line, which reads ignore and the next append repairs.
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from shared.errors import LedgerBusyError
from shared.evaluation.item import DatasetItem
from shared.evaluation.runner import PendingItem
from shared.monitoring.ledger.base import LedgerEntry, ScoredItemsStore

COLUMNS = ["monitor", "source_key", "item_id", "metric_name", "metric_version", "run_id", "recorded_at"]
HEADER = ",".join(COLUMNS) + "\n"


@dataclass
class LedgerStats:
    path: str
    rows: int
    unique_keys: int
    torn_lines: int
    bytes: int
    per_monitor: dict[str, int]


class CsvScoredItemsStore(ScoredItemsStore):
    def __init__(self, monitor: str, source_key: str, *, path: Path, lock_timeout_s: float = 600.0) -> None:
        super().__init__(monitor, source_key)
        self.path = path
        self.lock_timeout_s = lock_timeout_s
        self._run_lock = FileLock(f"{path}.{monitor}.lock")
        self._append_lock = FileLock(f"{path}.lock")
        self._scored: set[str] | None = None

    async def open(self, run_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._run_lock.acquire(timeout=self.lock_timeout_s)
        except Timeout:
            raise LedgerBusyError(
                f"another run of monitor '{self.monitor}' holds {self._run_lock.lock_file} "
                f"(waited {self.lock_timeout_s:g}s); try again when it finishes"
            ) from None

    async def close(self) -> None:
        if self._run_lock.is_locked:
            self._run_lock.release()

    def _load(self) -> set[str]:
        """Keys `item_id,metric_name,metric_version` recorded for this monitor and source.

        Hand-rolled rather than csv.reader, and one flat set of strings rather than nested dicts:
        a ledger holds millions of lines and only those starting with this monitor's
        `monitor,source_key,` prefix matter. Metric names and versions never contain commas, so
        the key is everything before the last two fields; lines with quotes (an id holding a
        comma or quote) go through the csv module.
        """
        if self._scored is None:
            prefix = _csv_line([self.monitor, self.source_key]).rstrip("\n") + ","
            cut = len(prefix)
            mine = [line for line in _complete_lines(self.path) if line.startswith(prefix)]
            plain = [line for line in mine if '"' not in line]
            scored = {line[cut:].rsplit(",", 2)[0] for line in plain if line.count(",") == len(COLUMNS) - 1}
            if len(plain) < len(mine):
                quoted = csv.reader(line for line in mine if '"' in line)
                scored.update(_key(row[2], row[3], row[4]) for row in quoted if len(row) == len(COLUMNS))
            self._scored = scored
        return self._scored

    async def filter_unscored(self, items: Sequence[DatasetItem], versions: Mapping[str, str]) -> list[PendingItem]:
        scored = self._load()
        pending: list[PendingItem] = []
        for item in items:
            needed = [name for name, version in versions.items() if _key(item.id, name, version) not in scored]
            if len(needed) == len(versions):
                pending.append(PendingItem(item))
            elif needed:
                pending.append(PendingItem(item, frozenset(needed)))
        return pending

    async def record(self, entries: Sequence[LedgerEntry]) -> int:
        if not entries:
            return 0
        scored = self._load()
        fresh: list[LedgerEntry] = []
        fresh_keys: list[str] = []  # each key built once (they end up in `scored` anyway)
        for e in entries:
            key = _key(e.item_id, e.metric_name, e.metric_version)
            if key not in scored:
                fresh.append(e)
                fresh_keys.append(key)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(
            [e.monitor, e.source_key, e.item_id, e.metric_name, e.metric_version, e.run_id, e.recorded_at]
            for e in fresh
        )
        with self._append_lock:
            _append(self.path, buffer.getvalue())
        scored.update(fresh_keys)
        return len(fresh)


def _key(item_id: str, metric_name: str, metric_version: str) -> str:
    return f"{item_id},{metric_name},{metric_version}"


def _append(path: Path, text: str) -> None:
    """One write per batch, after repairing a torn last line; fsync so a recorded entry is durable."""
    new_file = not path.exists() or path.stat().st_size == 0
    with path.open("ab+") as handle:
        if not new_file:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                _truncate_torn_tail(handle)
        payload = (HEADER if new_file else "") + text
        handle.write(payload.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def _truncate_torn_tail(handle: io.BufferedRandom) -> None:
    handle.seek(0)
    data = handle.read()
    cut = data.rfind(b"\n") + 1
    handle.truncate(cut)
    handle.seek(0, os.SEEK_END)


def _complete_lines(path: Path) -> list[str]:
    """The file's lines without their newline, minus an unterminated last line (a torn append)."""
    if not path.exists():
        return []
    data = path.read_text(encoding="utf-8")
    lines = data.split("\n")
    lines.pop()  # "" after the final newline, or the torn tail of an interrupted append
    return lines


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def read_rows(path: Path) -> Iterator[list[str]]:
    """Complete rows only: the header, short rows and an unterminated last line are skipped."""
    for row in csv.reader(_complete_lines(path)):  # a quoted field may not hold a newline: ids never do
        if len(row) == len(COLUMNS) and row[0] != "monitor":
            yield row


def ledger_stats(path: Path) -> LedgerStats:
    rows = 0
    keys: set[tuple[str, ...]] = set()
    per_monitor: dict[str, int] = defaultdict(int)
    for row in read_rows(path):
        rows += 1
        keys.add(tuple(row[:5]))
        per_monitor[row[0]] += 1
    total_lines = 0
    if path.exists():
        with path.open("rb") as handle:
            total_lines = sum(1 for _ in handle)
    return LedgerStats(
        path=str(path),
        rows=rows,
        unique_keys=len(keys),
        torn_lines=max(0, total_lines - 1 - rows) if total_lines else 0,
        bytes=path.stat().st_size if path.exists() else 0,
        per_monitor=dict(per_monitor),
    )


def compact(path: Path) -> tuple[int, int]:
    """Rewrite without duplicate keys or torn lines (atomic replace). Returns (before, after) rows."""
    with FileLock(f"{path}.lock"):
        seen: set[tuple[str, ...]] = set()
        kept: list[list[str]] = []
        before = 0
        for row in read_rows(path):
            before += 1
            key = tuple(row[:5])
            if key not in seen:
                seen.add(key)
                kept.append(row)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            handle.write(HEADER)
            csv.writer(handle, lineterminator="\n").writerows(kept)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    return before, len(kept)
