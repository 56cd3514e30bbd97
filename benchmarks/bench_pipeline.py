"""Foundation figures: file-source pipeline throughput, CSV ledger lookups, streaming sampling RSS.

Each scenario runs in a fresh child process so its peak RSS is its own.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

PIPELINE_TRACES = 10_000
LEDGER_ROWS = 1_000_000
LEDGER_CANDIDATES = 10_000
SAMPLING_TRACES = 100_000


def _peak_rss_mb() -> float:
    """This process's high-water RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from
    the parent across fork+exec, which would report the benchmark runner's own peak."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pipeline(workdir: str) -> dict[str, Any]:
    """10,000 traces, file source -> athena extractor -> 5 heuristic metrics -> local sink + ledger."""
    import yaml

    from implementations.athena.generate_traces import write_traces
    from shared.monitoring.monitor import OnlineMonitor

    root = Path(workdir)
    write_traces(root / "traces.jsonl", PIPELINE_TRACES, seed=11)
    config = {
        "monitor": "bench_pipeline",
        "plugins": ["implementations.athena.metrics"],
        "source": {"type": "file", "path": str(root / "traces.jsonl")},
        "extractor": "implementations.athena.extractors:extract_recommendation",
        "sampling": {"strategy": "all"},
        "metrics": [
            {"key": "non_empty"},
            {"key": "pii_leakage"},
            {"key": "citation_validity"},
            {"key": "refusal"},
            {"key": "length_constraint", "params": {"max_chars": 4000}},
        ],
        "evaluation": {"concurrency": 64},
        "dedup": {"path": str(root / "ledger.csv")},
        "publish": {"local": {"dir": str(root / "runs")}},
    }
    (root / "bench.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    monitor = OnlineMonitor.from_yaml(root / "bench.yaml", base_dir=root)
    started = time.perf_counter()
    summary = monitor.run()
    elapsed = time.perf_counter() - started
    return {
        "items": summary.counts.evaluated,
        "seconds": elapsed,
        "items_per_s": summary.counts.evaluated / elapsed,
        "peak_rss_mb": _peak_rss_mb(),
        "status": summary.status,
    }


def ledger(workdir: str) -> dict[str, Any]:
    """Load a 1,000,000-row CSV ledger and test 10,000 candidates against it."""
    from shared.evaluation.item import DatasetItem
    from shared.monitoring.ledger.csv_store import HEADER, CsvScoredItemsStore

    path = Path(workdir) / "ledger.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write(HEADER)
        handle.writelines(
            f"bench,file:t,item-{i},m1,abc123def456,run-1,2026-11-22T00:00:00Z\n" for i in range(LEDGER_ROWS)
        )
    candidates = [DatasetItem(id=f"item-{i * 150}") for i in range(LEDGER_CANDIDATES)]
    store = CsvScoredItemsStore("bench", "file:t", path=path)
    started = time.perf_counter()
    pending = asyncio.run(store.filter_unscored(candidates, {"m1": "abc123def456"}))
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "pending": len(pending), "peak_rss_mb": _peak_rss_mb()}


def sampling(workdir: str) -> dict[str, Any]:
    """Random 100 of 100,000 traces read through the file source: memory O(sample)."""
    import yaml

    from implementations.athena.generate_traces import write_traces
    from shared.monitoring.monitor import OnlineMonitor

    root = Path(workdir)
    write_traces(root / "big.jsonl", SAMPLING_TRACES, seed=5)
    before = _peak_rss_mb()
    config = {
        "monitor": "bench_sampling",
        "source": {"type": "file", "path": str(root / "big.jsonl")},
        "extractor": "implementations.athena.extractors:extract_recommendation",
        "sampling": {"strategy": "random", "n": 100, "seed": 1},
        "metrics": [{"key": "non_empty"}],
        "dedup": {"store": "none"},
        "publish": {"local": {"dir": str(root / "runs")}},
    }
    (root / "s.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    started = time.perf_counter()
    summary = OnlineMonitor.from_yaml(root / "s.yaml", base_dir=root).run()
    return {
        "fetched": summary.counts.fetched,
        "sampled": summary.counts.sampled,
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_mb": before,
    }


def _child(name: str, workdir: str, queue: Any) -> None:
    from shared.process import tune_gc

    tune_gc()  # as the `evalmon` command does
    try:
        queue.put(globals()[name](workdir))
    except BaseException as exc:  # report instead of leaving the parent waiting
        queue.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def run_isolated(name: str) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as workdir:
        proc = ctx.Process(target=_child, args=(name, workdir, queue))
        proc.start()
        result: dict[str, Any] = queue.get(timeout=900)
        proc.join()
    if "error" in result:
        raise RuntimeError(f"{name}: {result['error']}")
    return result


def main() -> None:
    p = run_isolated("pipeline")
    print(
        f"file pipeline: {p['items']} items x 5 heuristic metrics in {p['seconds']:.2f}s = "
        f"{p['items_per_s']:,.0f} items/s (target >= 2,000), peak RSS {p['peak_rss_mb']:.0f} MB, status {p['status']}"
    )
    ledger_fig = run_isolated("ledger")
    print(
        f"csv ledger: load {LEDGER_ROWS:,} rows + check {LEDGER_CANDIDATES:,} candidates in "
        f"{ledger_fig['seconds'] * 1000:.0f} ms (target <= 1,500 ms), {ledger_fig['pending']} new"
    )
    s = run_isolated("sampling")
    print(
        f"random sampling: {s['sampled']} of {s['fetched']:,} traces in {s['seconds']:.1f}s, "
        f"peak RSS {s['peak_rss_mb']:.0f} MB (target < 300 MB)"
    )


if __name__ == "__main__":
    main()
