"""Local results size: 20,000 traces x 9 heuristic metrics through the file pipeline.

Each run also writes the wide view (`publish.local.results_with_text: true`), which is exactly
the old results.csv (every row carries its item's text), so the formats compare within one run:
  csv      items.csv (text once per item) + results.csv (one row per item x metric, by id)
  parquet  items/ + results/ Parquet part files, one per chunk (zstd)
  wide     results_with_text.csv (text once per item x metric): today's results.csv
Target: at most a fifth of wide.

Size: BENCH_RESULTS_TRACES (5000; the issue's figure: 20000. The ratio does not depend on it).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks.targets import record

HAS_TARGETS = True
METRICS = [
    {"key": "non_empty"},
    {"key": "pii_leakage"},
    {"key": "citation_validity"},
    {"key": "citation_coverage"},
    {"key": "grounding_overlap"},
    {"key": "refusal"},
    {"key": "prompt_injection_markers"},
    {"key": "json_valid"},
    {"key": "length_constraint", "params": {"max_chars": 4000}},
]


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size


def main() -> None:
    import yaml

    from implementations.athena.generate_traces import write_traces
    from shared.monitoring.monitor import OnlineMonitor

    n = int(os.environ.get("BENCH_RESULTS_TRACES", "5000"))
    mb = 1024 * 1024
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_traces(root / "traces.jsonl", n, seed=13)
        for fmt in ("csv", "parquet"):
            config = {
                "monitor": f"bench_results_{fmt}",
                "plugins": ["implementations.athena.metrics"],
                "source": {"type": "file", "path": str(root / "traces.jsonl")},
                "extractor": "implementations.athena.extractors:extract_recommendation",
                "metrics": METRICS,
                "evaluation": {"concurrency": 64},
                "dedup": {"store": "none"},
                "publish": {"local": {"dir": str(root / "runs"), "results_with_text": True, "format": fmt}},
            }
            (root / "bench.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
            started = time.perf_counter()
            summary = OnlineMonitor.from_yaml(root / "bench.yaml", base_dir=root).run()
            seconds = time.perf_counter() - started
            run_dir = Path(str(summary.results_dir))
            names = ("items.csv", "results.csv") if fmt == "csv" else ("items", "results")
            items, results = (size_of(run_dir / name) for name in names)
            wide = size_of(run_dir / "results_with_text.csv")
            print(
                f"results size ({fmt}), {summary.counts.evaluated} traces x {len(METRICS)} metrics ({seconds:.1f}s, "
                f"status {summary.status}): items {items / mb:.1f} MB + results {results / mb:.1f} MB "
                f"= {(items + results) / mb:.1f} MB against {wide / mb:.1f} MB for today's results.csv: "
                f"{(items + results) / wide:.2f} of it (target <= 0.20)"
            )
            record(
                f"results size ({fmt}) against text on every row",
                (items + results) / wide,
                target=0.2,
                unit="of it",
                higher_is_better=False,
                note=f"{summary.counts.evaluated} traces x {len(METRICS)} metrics",
            )


if __name__ == "__main__":
    main()
