"""Keep the runs folder bounded: list run folders, and delete the old ones.

Runs prune themselves (a monitor's newest `publish.local.keep_runs` run folders stay); `evalmon runs
prune --keep N --older-than 30d` does the same on demand. Run folders hold results, summaries and
reports; the ledger and the databases hold what matters for correctness, so old folders are safe
to delete. Run ids (`20261122T201800Z-<monitor>-<8 hex>`, run_context.new_run_id) sort by start time.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.errors import ConfigError

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"^(?P<started>\d{8}T\d{6}Z)-(?P<monitor>.+)-[0-9a-f]{8}$")
# A folder without summary.json is a run in progress, or one that died; after this long, one that died.
ABANDONED_AFTER = timedelta(hours=24)
_AGE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>[mhdw])$")
_AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class RunFolder:
    """One run's folder under the runs root."""

    path: Path
    monitor: str
    started_at: datetime
    status: str  # ok, partial, failed, dry_run from summary.json; "incomplete" without one

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def complete(self) -> bool:
        return self.status != "incomplete"

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())


def list_runs(runs_root: Path, monitor: str | None = None) -> list[RunFolder]:
    """The run folders under `runs_root` (of one monitor, or all), oldest first."""
    if not runs_root.is_dir():
        return []
    found = []
    for path in runs_root.iterdir():
        match = RUN_ID.match(path.name)
        if match is None or not path.is_dir() or (monitor is not None and match["monitor"] != monitor):
            continue
        started = datetime.strptime(match["started"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        found.append(RunFolder(path, match["monitor"], started, _status(path)))
    return sorted(found, key=lambda run: run.run_id)


def runs_to_prune(
    runs: list[RunFolder],
    *,
    keep: int | None = None,
    older_than: timedelta | None = None,
    current_run_id: str | None = None,
    now: datetime | None = None,
) -> list[RunFolder]:
    """The folders the rules delete: beyond each monitor's newest `keep` AND started before `older_than`
    ago (with both rules, a folder goes only when both say so). Never the current run, nor a folder
    without summary.json unless it was started more than ABANDONED_AFTER ago (a run still going)."""
    if keep is None and older_than is None:
        raise ValueError("runs_to_prune needs keep, older_than or both")
    now = now or datetime.now(UTC)
    by_monitor: dict[str, list[RunFolder]] = {}
    for run in sorted(runs, key=lambda r: r.run_id):
        by_monitor.setdefault(run.monitor, []).append(run)
    doomed = []
    for folders in by_monitor.values():
        beyond_keep = folders[: max(0, len(folders) - keep)] if keep is not None else folders
        for run in beyond_keep:
            if older_than is not None and run.started_at > now - older_than:
                continue
            if run.run_id == current_run_id or (not run.complete and run.started_at > now - ABANDONED_AFTER):
                continue
            doomed.append(run)
    return doomed


def prune_runs(
    runs_root: Path,
    monitor: str | None,
    *,
    keep: int | None = None,
    older_than: timedelta | None = None,
    current_run_id: str | None = None,
    now: datetime | None = None,
) -> list[Path]:
    """Delete the run folders `runs_to_prune` picks (one monitor's, or every monitor's when None);
    returns the folders removed. A folder that cannot be removed now is left for next time."""
    doomed = runs_to_prune(
        list_runs(runs_root, monitor), keep=keep, older_than=older_than, current_run_id=current_run_id, now=now
    )
    removed = []
    for run in doomed:
        try:
            shutil.rmtree(run.path)
            removed.append(run.path)
        except OSError as exc:  # another process may be reading it: try again next run
            log.debug("could not remove old run folder %s: %s", run.path, exc)
    if removed:
        log.info("removed %d old run folder(s) under %s", len(removed), runs_root)
    return removed


def parse_age(text: str, *, field: str = "--older-than") -> timedelta:
    """'30d', '12h', '90m', '2w' -> timedelta."""
    match = _AGE.match(text.strip().lower())
    if match is None or float(match["number"]) <= 0:
        raise ConfigError(f"'{text}' is not an age like 30d, 12h, 90m or 2w", field=field)
    return timedelta(**{_AGE_UNITS[match["unit"]]: float(match["number"])})


def _status(folder: Path) -> str:
    """The run's status from summary.json (written last): "incomplete" without one, "unknown" if unreadable."""
    path = folder / "summary.json"
    if not path.is_file():
        return "incomplete"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unknown"
    status = summary.get("status") if isinstance(summary, dict) else None
    return status if isinstance(status, str) else "unknown"
