"""What every stage may know about the run in progress (identity, window, config, settings)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from shared import __version__
from shared.monitoring.config import MonitorConfig
from shared.monitoring.window import Window
from shared.settings import Settings


def new_run_id(monitor: str, now: datetime | None = None) -> str:
    """Sortable and unique: `20261122T201800Z-<monitor>-<8 hex>`."""
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{monitor}-{uuid.uuid4().hex[:8]}"


@dataclass
class RunContext:
    run_id: str
    monitor: str
    config: MonitorConfig
    config_hash: str
    source_key: str
    window: Window
    settings: Settings
    base_dir: Path
    dry_run: bool = False
    keep_results: bool = True  # write the run folder (a dry run keeps none unless asked: --keep-results)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    evalmon_version: str = __version__

    @property
    def results_dir(self) -> Path:
        return (self.base_dir / self.config.publish.local.dir / self.run_id).resolve()

    def provenance(self) -> dict[str, str]:
        """Attached to every published score (Langfuse metadata, Postgres run row)."""
        return {
            "run_id": self.run_id,
            "monitor": self.monitor,
            "config_hash": self.config_hash,
            "evalmon_version": self.evalmon_version,
        }
