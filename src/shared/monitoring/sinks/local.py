"""The local sink: data/runs/<run_id>/results.csv (one row per item x metric) and summary.json."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shared.evaluation.results import EvaluationResult
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import Sink, SinkReport


class LocalSink(Sink):
    name = "local"

    async def publish(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        directory = run.results_dir
        try:
            directory.mkdir(parents=True, exist_ok=True)
            frame = results.to_dataframe()
            frame["signals"] = frame["signals"].map(lambda s: json.dumps(s, ensure_ascii=False, default=str))
            _atomic_write(directory / "results.csv", frame.to_csv(index=False))
        except OSError as exc:
            return SinkReport(self.name, error=f"cannot write {directory}: {exc}")
        return SinkReport(self.name, details={"results_dir": str(directory)})


def write_summary(directory: Path, summary: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "summary.json"
    _atomic_write(path, json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
