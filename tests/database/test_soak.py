"""scripts/soak.py keeps working: a short soak (about 20 s of chaos) passes every end-state check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"


def test_a_short_soak_under_faults_and_kills_ends_with_one_score_and_one_row_per_pair(pg_url: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            "--minutes",
            "0.35",
            "--database-url",
            pg_url,
            "--seed",
            "7",
            "--kill-share",
            "0.7",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-3000:]
    figures = json.loads(lines[-1])
    assert done.returncode == 0 and figures["passed"], figures["problems"]
    assert figures["kills_total"] >= 1, figures
    assert sum(figures["faults"].values()) > 0, figures
    assert figures["traces"] > 0
    assert figures["langfuse_scores"] == figures["result_rows"] == figures["ledger_rows"] == 2 * figures["traces"]
    assert "running" not in figures["run_rows"]
