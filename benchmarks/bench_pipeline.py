"""Foundation figures: file-source pipeline throughput, CSV ledger lookups, streaming sampling RSS.

Each scenario runs in a fresh child process so its peak RSS is its own.

The pipeline figure is a whole run (`monitor.run()`), which ends by writing report.md/report.html
(matplotlib charts: a fixed cost per run, about 0.4-0.5 s including matplotlib's import, whatever
the number of items). It is printed with and without that report, by wall clock and by CPU time
(the machine is shared: CPU time moves less with other processes' load). Three runs, each in a
fresh process; the median is the figure.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.targets import machine_note, record

HAS_TARGETS = True
PIPELINE_TRACES = 10_000
PIPELINE_RUNS = 3  # the median run is the figure: the machine is shared
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
    report = {"seconds": 0.0, "cpu_s": 0.0}
    write_report = OnlineMonitor._write_report

    def timed_report(self: OnlineMonitor, *args: Any, **kwargs: Any) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            write_report(self, *args, **kwargs)
        finally:
            report["seconds"] += time.perf_counter() - wall
            report["cpu_s"] += time.process_time() - cpu

    OnlineMonitor._write_report = timed_report  # type: ignore[method-assign]
    started, cpu = time.perf_counter(), time.process_time()
    summary = monitor.run()
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return {
        "items": summary.counts.evaluated,
        "seconds": elapsed,
        "cpu_s": cpu_s,
        "report_s": report["seconds"],
        "report_cpu_s": report["cpu_s"],
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
    runs = sorted((run_isolated("pipeline") for _ in range(PIPELINE_RUNS)), key=lambda r: r["seconds"])
    print("file pipeline runs (whole run, wall): " + ", ".join(f"{r['items'] / r['seconds']:,.0f}" for r in runs))
    p = runs[len(runs) // 2]
    n, wall, cpu = p["items"], p["seconds"], p["cpu_s"]
    without_wall, without_cpu = wall - p["report_s"], cpu - p["report_cpu_s"]
    load = machine_note()
    print(
        f"file pipeline (median of {PIPELINE_RUNS}): {n} items x 5 heuristic metrics, whole run in {wall:.2f}s = {n / wall:,.0f} items/s "
        f"(CPU {cpu:.2f}s = {n / cpu:,.0f} items/s); the run report took {p['report_s']:.2f}s of it "
        f"({p['report_cpu_s']:.2f}s CPU); without it {without_wall:.2f}s = {n / without_wall:,.0f} items/s "
        f"(CPU {n / without_cpu:,.0f} items/s); target >= 2,000; peak RSS {p['peak_rss_mb']:.0f} MB, "
        f"status {p['status']}, {load}"
    )
    record(
        "file pipeline, whole run",
        n / wall,
        target=2_000,
        unit="items/s",
        note=f"median of {PIPELINE_RUNS}; CPU-time basis {n / cpu:,.0f} items/s; "
        f"run report {p['report_s']:.2f}s of {wall:.2f}s; {load}",
    )
    record(
        "file pipeline, without the run report",
        n / without_wall,
        target=2_000,
        unit="items/s",
        note=f"CPU-time basis {n / without_cpu:,.0f} items/s",
    )
    ledger_fig = run_isolated("ledger")
    print(
        f"csv ledger: load {LEDGER_ROWS:,} rows + check {LEDGER_CANDIDATES:,} candidates in "
        f"{ledger_fig['seconds'] * 1000:.0f} ms (target <= 1,500 ms), {ledger_fig['pending']} new"
    )
    record(
        "csv ledger, 1M rows + 10k candidates",
        ledger_fig["seconds"] * 1000,
        target=1_500,
        unit="ms",
        higher_is_better=False,
    )
    s = run_isolated("sampling")
    print(
        f"random sampling: {s['sampled']} of {s['fetched']:,} traces in {s['seconds']:.1f}s, "
        f"peak RSS {s['peak_rss_mb']:.0f} MB (target < 300 MB)"
    )
    record(
        "random sampling 100 of 100k, peak RSS",
        s["peak_rss_mb"],
        target=300,
        unit="MB",
        higher_is_better=False,
    )


if __name__ == "__main__":
    main()
