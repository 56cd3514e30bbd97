"""`evalmon validate` resolves data paths exactly as `run` does, so it never passes what `run` then fails."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from shared.cli import app


def test_validate_fails_where_run_would_not_find_the_trace_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "traces.jsonl").write_text("", encoding="utf-8")
    config = project / "monitor.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "monitor": "paths",
                "source": {"type": "file", "path": "data/traces.jsonl"},
                "metrics": [{"key": "non_empty"}],
                "dedup": {"store": "none"},
            }
        ),
        encoding="utf-8",
    )
    runner = CliRunner()
    monkeypatch.chdir(project)
    assert runner.invoke(app, ["validate", str(config)]).exit_code == 0

    monkeypatch.chdir(tmp_path)  # another directory: the relative path no longer points at the file
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert "trace file not found" in result.output and "working directory" in result.output
    assert "source.path" in result.output
