"""Fake jobs for the scheduler tests: blocking callables that return a RunSummary-like outcome."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Outcome:
    status: str = "ok"
    counts: dict[str, int] = field(default_factory=dict)

    def exit_code(self) -> int:
        return 0 if self.status in ("ok", "dry_run") else 1


class RecordingJob:
    """Counts starts and the highest number of overlapping runs; sleeps `duration_s` per run."""

    def __init__(self, duration_s: float = 0.0, fail_first: int = 0, status: str = "ok") -> None:
        self.duration_s = duration_s
        self.fail_first = fail_first
        self.status = status
        self.starts: list[float] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def __call__(self) -> Outcome:
        with self._lock:
            self.starts.append(time.monotonic())
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            number = len(self.starts)
        try:
            time.sleep(self.duration_s)
            if number <= self.fail_first:
                raise RuntimeError(f"boom in run {number}")
            return Outcome(self.status)
        finally:
            with self._lock:
                self.active -= 1


def wait_for(predicate: object, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.02)
    return False
