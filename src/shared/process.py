"""Process-wide tuning applied by the `evalmon` command (not on import: notebooks keep their own)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def tune_gc() -> None:
    """Collect the young generation less often.

    A run allocates many long-lived containers (traces, items, result rows); with CPython's
    default thresholds full collections keep rescanning them, which cost about a quarter of
    the file pipeline's time in our benchmark. Reference counting still frees most garbage.
    """
    gc.set_threshold(50_000, 50, 100)


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from plain code, also inside a running event loop (Jupyter),
    where `asyncio.run` is not allowed: there it runs on a worker thread with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
