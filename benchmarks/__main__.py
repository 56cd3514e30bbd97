"""Run every benchmark module (or those named on the command line), print their figures, then the
targets table (benchmarks/targets.py).

The process runs with the GC thresholds the `evalmon` command sets (shared.process.tune_gc), so
in-process figures measure what a monitor run does; scenarios in child processes set them too.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

from benchmarks.targets import FIGURES, table
from shared.process import tune_gc


def main(argv: list[str]) -> int:
    tune_gc()  # as the `evalmon` command does
    here = Path(__file__).parent
    names = argv or sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    failed = 0
    missing: list[str] = []
    started_all = time.perf_counter()
    for name in names:
        print(f"\n== {name} ==", flush=True)
        started = time.perf_counter()
        before = len(FIGURES)
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            module.main()
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failed += 1
            missing.append(name)
            print(f"{name} FAILED: {type(exc).__name__}: {exc}", flush=True)
        else:
            if getattr(module, "HAS_TARGETS", False) and len(FIGURES) == before:
                missing.append(name)
        print(f"({name} took {time.perf_counter() - started:.1f}s)", flush=True)
    print(f"\n== targets (all benchmarks took {time.perf_counter() - started_all:.0f}s) ==")
    print(table(FIGURES, missing), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
