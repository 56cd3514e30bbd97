"""Process-wide tuning applied by the `evalmon` command (not on import: notebooks keep their own)."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Collect the young generation less often.

    A run allocates many long-lived containers (traces, items, result rows); with CPython's
    default thresholds full collections keep rescanning them, which cost about a quarter of
    the file pipeline's time in our benchmark. Reference counting still frees most garbage.
    """
    gc.set_threshold(50_000, 50, 100)
