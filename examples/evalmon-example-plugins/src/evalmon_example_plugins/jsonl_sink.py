"""`type: jsonl`: one JSON line per (item, metric) appended to a file, confirmed once it is on disk.

    publish:
      sinks:
        - {type: jsonl, path: data/scores.jsonl, required: true}

A sink must report exactly the pairs it stored (the ledger records only pairs every required sink
confirmed), so `publish` returns them only after the lines are written and fsynced, and none when
the write fails. Publishing is idempotent for readers: a pair redone after a failed run is
appended again, and each line carries `run_id`, so readers keep the last line per (id, metric_name).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from pydantic import Field

from evalmon import EvaluationResult, RunContext, Sink, SinkParams, SinkReport, register_sink


class JsonlSinkParams(SinkParams):
    path: str = Field(min_length=1, description="the JSONL file; a relative path resolves against the run's base dir")


@register_sink("jsonl")
class JsonlSink(Sink):
    Params = JsonlSinkParams
    params: JsonlSinkParams  # its `publish.sinks` entry; evalmon builds the sink as JsonlSink(params)

    def file(self, run: RunContext) -> Path:
        path = Path(self.params.path)
        return path if path.is_absolute() else run.base_dir / path

    async def check(self, run: RunContext) -> None:
        """Fail before any scoring when the file cannot be written."""
        path = self.file(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass

    async def publish(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        path = self.file(run)
        lines = [json.dumps({"run_id": run.run_id, **row.as_record()}, default=str) + "\n" for row in results]
        try:
            await asyncio.to_thread(_append, path, lines)
        except OSError as exc:  # nothing confirmed: the ledger records none of these pairs
            return SinkReport(self.name, error=f"cannot write {path}: {exc}")
        stored = {(row.item.id, row.metric_name) for row in results}
        return SinkReport(self.name, stored=stored, details={"path": str(path), "lines": len(lines)})


def _append(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(lines))
        handle.flush()
        os.fsync(handle.fileno())
