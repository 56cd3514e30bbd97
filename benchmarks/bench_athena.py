"""athena trace generation speed: the benchmarks of other stages write 10,000-100,000 traces first.

Prints traces/s and MB/s of `write_traces` in both modes: every trace built from scratch (the
bundled sample, up to 10,000 traces by default) and stamped out of templates (the default above
10,000). Target: 100,000 traces in well under a minute.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.targets import record
from implementations.athena.generate_traces import write_traces

HAS_TARGETS = True
UNIQUE_TRACES = 5_000
TEMPLATE_TRACES = 50_000


def _measure(path: Path, n: int, variety: int | None) -> tuple[float, int]:
    started = time.perf_counter()
    stats = write_traces(path, n, seed=1, variety=variety)
    return time.perf_counter() - started, stats.bytes


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="evalmon-bench-athena-") as tmp:
        path = Path(tmp) / "traces.jsonl"
        for label, n, variety in (
            ("unique", UNIQUE_TRACES, None),
            ("templates", TEMPLATE_TRACES, 2_000),
        ):
            seconds, size = _measure(path, n, variety)
            rate = n / seconds
            print(
                f"athena generate ({label}): {n:,} traces in {seconds:.2f} s = {rate:,.0f} traces/s, "
                f"{size / seconds / 1e6:,.0f} MB/s, {size / n / 1e3:.1f} kB/trace; "
                f"100,000 traces ~ {100_000 / rate:.1f} s"
            )
            if variety is not None:  # the mode write_traces uses above 10,000 traces
                record("athena generate 100,000 traces", 100_000 / rate, target=60, unit="s", higher_is_better=False)
            path.unlink()


if __name__ == "__main__":
    main()
