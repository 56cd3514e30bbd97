"""Execute notebooks/offline_analysis.ipynb end to end (bundled sample file, no credentials), so it never rots."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "offline_analysis.ipynb"


def test_offline_analysis_notebook_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    sample = ROOT / "data" / "samples" / "athena_traces.jsonl"
    if not sample.is_file():
        pytest.fail(f"bundled sample missing: {sample}")
    monkeypatch.setenv("EVALMON_NOTEBOOK_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("EVALMON_REPORT_CHARTS", "1")  # the notebook shows the report's charts
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(ROOT)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "traces from the bundled sample file" in text
    assert "items," in text and "metric_score" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "the plot did not render"
    assert not any(o.get("output_type") == "error" for o in outputs)
    assert os.environ.get("EVALMON_NOTEBOOK_OFFLINE") == "1"
