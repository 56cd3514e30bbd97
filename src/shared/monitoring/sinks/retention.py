"""Keep the runs folder bounded: only a monitor's newest `publish.local.keep_runs` run folders stay.

Run folders hold results, summaries and reports; the ledger and the databases hold what matters
for correctness, so old folders are safe to delete. Run ids sort by start time.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def prune_runs(runs_root: Path, monitor: str, *, keep: int, current_run_id: str) -> list[Path]:
    """Delete this monitor's oldest run folders beyond `keep` (never the current run's); returns them."""
    folders = sorted(
        (p for p in runs_root.glob(f"*-{monitor}-*") if p.is_dir() and (p / "summary.json").is_file()),
        key=lambda p: p.name,
    )
    ours = [p for p in folders if p.name.split("-", 1)[1].rsplit("-", 1)[0] == monitor]
    removed = []
    for folder in ours[: max(0, len(ours) - keep)]:
        if folder.name == current_run_id:
            continue
        try:
            shutil.rmtree(folder)
            removed.append(folder)
        except OSError as exc:  # another process may be reading it: try again next run
            log.debug("could not remove old run folder %s: %s", folder, exc)
    if removed:
        log.info("removed %d old run folder(s) of %s (publish.local.keep_runs=%d)", len(removed), monitor, keep)
    return removed
