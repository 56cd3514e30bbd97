from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from implementations.athena.generate_traces import write_traces


@pytest.fixture
def traces_file(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    write_traces(path, 60, seed=3)
    return path


def write_config(tmp_path: Path, traces: Path, **changes: object) -> Path:
    """A small monitor over `traces` with all state (ledger, runs) inside tmp_path."""
    config: dict[str, object] = {
        "monitor": "core_test",
        "source": {"type": "file", "path": str(traces)},
        "sampling": {"strategy": "all"},
        "metrics": [{"key": "non_empty"}, {"key": "pii_leakage"}],
        "dedup": {"path": str(tmp_path / "ledger.csv"), "lock_timeout_s": 60},
        "publish": {"local": {"dir": str(tmp_path / "runs")}},
    }
    config.update(changes)
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
