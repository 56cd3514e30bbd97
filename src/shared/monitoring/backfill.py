"""`evalmon backfill CONFIG --since ISO --until ISO [--chunk 1h]`: score a past window in chunks.

DATAFLOW
    [since, until) --chunk_windows--> [c1, c2, ... cN)   contiguous, last one clipped to until
      -> BackfillState (data/backfill/<monitor>__<since>__<until>.json)
                                                          chunks already completed by an earlier
                                                          backfill of the same window and config
      -> run_chunk(c.since, c.until)                      one OnlineMonitor run with an explicit
                                                          window: the usual ledger dedup applies
      -> state.mark_done(c) after each ok chunk           so an interrupted backfill resumes there
      -> BackfillReport                                   chunks run / resumed, totals, exit code

Why chunks and a state file when the ledger already dedups: a chunk bounds the memory and the
blast radius of one run (one failing hour does not redo a week), and the state file lets a resumed
backfill skip even the fetch of finished chunks. The state is keyed by the config's hash: after a
metric is added the hash changes, every chunk runs again, and the ledger makes each chunk score
only the new metric. The ledger, not this file, is what guarantees nothing is scored twice.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from shared.errors import ConfigError, LedgerBusyError
from shared.monitoring.scheduler import EXIT_FAILED, EXIT_OK, RunOutcome
from shared.monitoring.window import Window, iso, parse_iso

logger = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("data/backfill")
_CHUNK_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
COUNT_KEYS = ("fetched", "evaluated", "recorded")

ChunkRunner = Callable[[datetime, datetime], RunOutcome]


def parse_chunk(text: str) -> timedelta:
    """'1h', '30m', '1d', '90s', '1h30m' -> timedelta (units s, m, h, d, w)."""
    compact = text.strip().lower().replace(" ", "")
    parts = _CHUNK_PART.findall(compact)
    if not compact or "".join(f"{n}{u}" for n, u in parts) != compact:
        raise ConfigError(f"'{text}' is not a duration like 1h, 30m, 1d or 1h30m", field="--chunk")
    size = sum((timedelta(**{_UNITS[unit]: float(number)}) for number, unit in parts), timedelta())
    if size <= timedelta(0):
        raise ConfigError(f"chunk '{text}' must be longer than zero", field="--chunk")
    return size


def chunk_windows(since: datetime, until: datetime, size: timedelta) -> list[Window]:
    """Contiguous half-open windows covering [since, until); the last one is clipped to `until`."""
    if since >= until:
        raise ConfigError(f"backfill window is empty: since {iso(since)} is not before until {iso(until)}")
    windows: list[Window] = []
    start = since
    while start < until:
        end = min(start + size, until)
        windows.append(Window(since=start, until=end, explicit=True))
        start = end
    return windows


@dataclass
class BackfillState:
    """Completed chunks of one monitor's backfill over one window, saved atomically after each chunk."""

    path: Path
    monitor: str
    since: str
    until: str
    fingerprint: str
    completed: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, *, monitor: str, since: datetime, until: datetime, fingerprint: str) -> BackfillState:
        fresh = cls(path=path, monitor=monitor, since=iso(since), until=iso(until), fingerprint=fingerprint)
        if not path.is_file():
            return fresh
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            logger.warning("backfill state %s unreadable (%s): starting over", path, exc)
            return fresh
        if data.get("fingerprint") != fingerprint:
            logger.info("monitor config changed since the last backfill of this window: every chunk runs again")
            return fresh
        fresh.completed = dict(data.get("completed") or {})
        return fresh

    @staticmethod
    def key(window: Window) -> str:
        return f"{iso(window.since)}/{iso(window.until)}"

    def is_done(self, window: Window) -> bool:
        return self.key(window) in self.completed

    def mark_done(self, window: Window, *, status: str, counts: dict[str, int]) -> None:
        self.completed[self.key(window)] = {"status": status, "finished_at": iso(datetime.now(UTC)), **counts}
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        blob = {
            "monitor": self.monitor,
            "since": self.since,
            "until": self.until,
            "fingerprint": self.fingerprint,
            "completed": self.completed,
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(blob, handle, indent=2)
                handle.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def state_path(state_dir: Path, monitor: str, since: datetime, until: datetime) -> Path:
    stamp = "%Y%m%dT%H%M%SZ"
    return state_dir / f"{monitor}__{since.astimezone(UTC):{stamp}}__{until.astimezone(UTC):{stamp}}.json"


@dataclass
class ChunkResult:
    window: Window
    status: str  # ok | partial | failed | dry_run | error | resumed
    exit_code: int
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    more_available: bool = False  # stopped at its item limit: not done, the next backfill continues it


@dataclass
class BackfillReport:
    monitor: str
    since: datetime
    until: datetime
    chunks: list[ChunkResult]
    total_chunks: int
    state_file: Path | None

    @property
    def ran(self) -> int:
        return sum(1 for c in self.chunks if c.status != "resumed")

    @property
    def resumed(self) -> int:
        return sum(1 for c in self.chunks if c.status == "resumed")

    @property
    def exit_code(self) -> int:
        return max((c.exit_code for c in self.chunks), default=EXIT_OK)

    @property
    def complete(self) -> bool:
        return len(self.chunks) == self.total_chunks and self.exit_code == EXIT_OK

    def totals(self) -> dict[str, int]:
        return {key: sum(c.counts.get(key, 0) for c in self.chunks if c.status != "resumed") for key in COUNT_KEYS}

    def describe(self) -> str:
        """One line for people: what ran, what was resumed, totals, and how to continue."""
        totals = ", ".join(f"{key} {value}" for key, value in self.totals().items())
        text = (
            f"backfill {self.monitor} [{iso(self.since)}, {iso(self.until)}): {self.ran} chunk(s) run, "
            f"{self.resumed} already done, of {self.total_chunks}; {totals}"
        )
        if not self.complete:
            text += "; incomplete: rerun the same command to resume"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "window": {"since": iso(self.since), "until": iso(self.until)},
            "total_chunks": self.total_chunks,
            "ran": self.ran,
            "resumed": self.resumed,
            "complete": self.complete,
            "exit_code": self.exit_code,
            "totals": self.totals(),
            "chunks": [
                {"since": iso(c.window.since), "until": iso(c.window.until), "status": c.status, **c.counts}
                | ({"error": c.error} if c.error else {})
                for c in self.chunks
            ],
        }


def outcome_counts(outcome: RunOutcome) -> dict[str, int]:
    """The RunSummary counts worth showing per chunk (fetched, evaluated, recorded), if present."""
    counts: Any = getattr(outcome, "counts", None)
    if hasattr(counts, "model_dump"):
        counts = counts.model_dump()
    if not isinstance(counts, dict):
        return {}
    return {
        key: int(value)
        for key in COUNT_KEYS
        if isinstance(value := counts.get(key), int) and not isinstance(value, bool)
    }


def outcome_more_available(outcome: RunOutcome) -> bool:
    """True when the run stopped at its item limit with more items left (RunSummary.counts.more_available)."""
    counts: Any = getattr(outcome, "counts", None)
    value = counts.get("more_available") if isinstance(counts, dict) else getattr(counts, "more_available", False)
    return bool(value)


def run_backfill(
    *,
    monitor: str,
    since: datetime,
    until: datetime,
    chunk: timedelta,
    run_chunk: ChunkRunner,
    fingerprint: str,
    state_dir: Path = DEFAULT_STATE_DIR,
    dry_run: bool = False,
    settled_before: datetime | None = None,
    progress: bool | None = None,
) -> BackfillReport:
    """Run `run_chunk` over each chunk not yet completed; stop at the first chunk that does not exit 0.

    `settled_before`: chunks ending after it run but are not recorded as done (their traces may
    still be arriving), so a later backfill of the same window picks them up again. A dry run
    neither reads nor writes the state.
    """
    windows = chunk_windows(since, until, chunk)
    path = state_path(state_dir, monitor, since, until)
    lock = FileLock(str(path.with_suffix(".lock")))
    if not dry_run:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise LedgerBusyError(f"another backfill of monitor {monitor} over this window is running") from None
    try:
        state = (
            None
            if dry_run
            else BackfillState.load(path, monitor=monitor, since=since, until=until, fingerprint=fingerprint)
        )
        with _Progress(monitor, len(windows), enabled=progress) as bar:
            results: list[ChunkResult] = []
            for index, window in enumerate(windows, start=1):
                if state is not None and state.is_done(window):
                    results.append(ChunkResult(window, "resumed", EXIT_OK))
                    bar.advance(index, window, "done earlier")
                    continue
                result = _run_one(run_chunk, window)
                results.append(result)
                settled = settled_before is None or window.until <= settled_before
                if result.more_available:
                    logger.warning(
                        "chunk %d/%d left items beyond its limit: it runs again next backfill", index, len(windows)
                    )
                if state is not None and result.exit_code == EXIT_OK and settled and not result.more_available:
                    state.mark_done(window, status=result.status, counts=result.counts)
                bar.advance(index, window, _describe(result))
                if result.exit_code != EXIT_OK:
                    logger.error(
                        "backfill of %s stopped at chunk %d/%d (%s): rerun the same command to resume",
                        monitor,
                        index,
                        len(windows),
                        result.error or result.status,
                    )
                    break
    finally:
        if lock.is_locked:
            lock.release()
    return BackfillReport(
        monitor=monitor,
        since=since,
        until=until,
        chunks=results,
        total_chunks=len(windows),
        state_file=None if dry_run else path,
    )


def _run_one(run_chunk: ChunkRunner, window: Window) -> ChunkResult:
    try:
        outcome = run_chunk(window.since, window.until)
    except ConfigError:
        raise
    except Exception as exc:
        logger.exception("chunk %s raised", BackfillState.key(window))
        return ChunkResult(window, "error", EXIT_FAILED, error=f"{type(exc).__name__}: {exc}")
    return ChunkResult(
        window,
        str(outcome.status),
        int(outcome.exit_code()),
        outcome_counts(outcome),
        more_available=outcome_more_available(outcome),
    )


def _describe(result: ChunkResult) -> str:
    counts = " ".join(f"{key} {value}" for key, value in result.counts.items())
    return f"{result.status}" + (f", {counts}" if counts else "")


class _Progress:
    """A rich progress bar on a terminal, one log line per chunk otherwise (CI logs, pipes)."""

    def __init__(self, monitor: str, total: int, *, enabled: bool | None) -> None:
        self.monitor = monitor
        self.total = total
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.fields[monitor]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=Console(stderr=True),
            )
            self._progress.start()
            self._task = self._progress.add_task("starting", total=self.total, monitor=self.monitor)
        return self

    def advance(self, index: int, window: Window, note: str) -> None:
        text = f"chunk {index}/{self.total} [{iso(window.since)}, {iso(window.until)}): {note}"
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=text)
        else:
            logger.info("backfill %s: %s", self.monitor, text)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def monitor_backfill(
    config: str,
    *,
    since: str,
    until: str,
    chunk: str = "1h",
    overrides: Sequence[str] = (),
    dry_run: bool = False,
    state_dir: Path = DEFAULT_STATE_DIR,
    progress: bool | None = None,
) -> BackfillReport:
    """`evalmon backfill`: each chunk is `OnlineMonitor.run(since=..., until=...)` of a fresh monitor."""
    from shared.monitoring.config import find_config, resolve_path
    from shared.monitoring.monitor import OnlineMonitor

    start, end = parse_iso(since, field="--since"), parse_iso(until, field="--until")
    size = parse_chunk(chunk)
    path = find_config(config)
    first = OnlineMonitor.from_yaml(path, overrides=list(overrides))
    monitor_config = first.config
    state_dir = resolve_path(state_dir, first.base_dir)  # beside the ledger: resumable from any directory
    settle = timedelta(minutes=monitor_config.window.settle_minutes)

    def run_chunk(chunk_since: datetime, chunk_until: datetime) -> RunOutcome:
        monitor = OnlineMonitor.from_yaml(path, overrides=list(overrides))
        return monitor.run(since=chunk_since, until=chunk_until, dry_run=dry_run)

    return run_backfill(
        monitor=monitor_config.monitor,
        since=start,
        until=end,
        chunk=size,
        run_chunk=run_chunk,
        fingerprint=monitor_config.config_hash(),
        state_dir=state_dir,
        dry_run=dry_run,
        settled_before=datetime.now(UTC) - settle,
        progress=progress,
    )
