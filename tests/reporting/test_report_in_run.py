"""A real run leaves report.md and report.html beside summary.json, and the next run compares with it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from shared.cli import app
from tests.core.conftest import traces_file, write_config

__all__ = ["traces_file"]  # the fixture, shared with the core tests


def test_each_run_writes_a_report_and_the_next_one_has_a_baseline(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(tmp_path, traces_file)
    runner = CliRunner()
    no_ledger = ["--set", "dedup.store=none"]  # so the second run scores the same items again
    first = json.loads(runner.invoke(app, ["-q", "run", str(config), *no_ledger, "--json"]).stdout)
    first_dir = Path(first["results_dir"])
    markdown = (first_dir / "report.md").read_text(encoding="utf-8")
    pii = first["metrics"]["pii_leakage"]
    assert f"| pii_leakage | lower is better | {pii['n']} |" in markdown
    assert "no baseline" in markdown
    assert "<img" in (first_dir / "report.html").read_text(encoding="utf-8")

    second = json.loads(runner.invoke(app, ["-q", "run", str(config), *no_ledger, "--json"]).stdout)
    assert second["status"] == "ok"
    markdown = (Path(second["results_dir"]) / "report.md").read_text(encoding="utf-8")
    assert "+0.0 pts vs" in markdown and "over 1 runs" in markdown  # same data as the run before it
