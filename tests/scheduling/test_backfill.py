from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from shared.errors import ConfigError, LedgerBusyError
from shared.monitoring.backfill import BackfillReport, chunk_windows, parse_chunk, run_backfill, state_path

from .fakes import Outcome

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


class ChunkRecorder:
    """A fake chunk runner: records windows, fails on the listed chunk numbers (1-based)."""

    def __init__(self, fail_on: set[int] | None = None, raise_on: set[int] | None = None) -> None:
        self.calls: list[tuple[datetime, datetime]] = []
        self.fail_on = fail_on or set()
        self.raise_on = raise_on or set()

    def __call__(self, since: datetime, until: datetime) -> Outcome:
        self.calls.append((since, until))
        number = len(self.calls)
        if number in self.raise_on:
            raise ConnectionError("source unreachable")
        status = "failed" if number in self.fail_on else "ok"
        return Outcome(status, counts={"fetched": 10, "evaluated": 4, "recorded": 4, "sampled": 4})


def backfill(tmp_path: Path, runner: ChunkRecorder, **kwargs: Any) -> BackfillReport:
    params: dict[str, Any] = {
        "monitor": "demo",
        "since": T0,
        "until": T0 + timedelta(hours=5),
        "chunk": timedelta(hours=1),
        "run_chunk": runner,
        "fingerprint": "cfg-1",
        "state_dir": tmp_path,
        "progress": False,
    }
    params.update(kwargs)
    return run_backfill(**params)


def test_parse_chunk_accepts_common_durations_and_rejects_the_rest() -> None:
    assert parse_chunk("1h") == timedelta(hours=1)
    assert parse_chunk("30m") == timedelta(minutes=30)
    assert parse_chunk("1d") == timedelta(days=1)
    assert parse_chunk("1h30m") == timedelta(minutes=90)
    assert parse_chunk(" 45s ") == timedelta(seconds=45)
    for bad in ("", "1", "h", "1x", "0m", "-1h", "1h and then some"):
        with pytest.raises(ConfigError, match="--chunk"):
            parse_chunk(bad)


def test_chunks_cover_the_window_without_gaps_and_clip_the_last() -> None:
    windows = chunk_windows(T0, T0 + timedelta(minutes=150), timedelta(hours=1))
    assert [(w.since, w.until) for w in windows] == [
        (T0, T0 + timedelta(hours=1)),
        (T0 + timedelta(hours=1), T0 + timedelta(hours=2)),
        (T0 + timedelta(hours=2), T0 + timedelta(minutes=150)),
    ]
    with pytest.raises(ConfigError, match="empty"):
        chunk_windows(T0, T0, timedelta(hours=1))


def test_backfill_runs_each_chunk_with_explicit_bounds_and_sums_counts(tmp_path: Path) -> None:
    runner = ChunkRecorder()
    report = backfill(tmp_path, runner)
    assert runner.calls == [(T0 + timedelta(hours=h), T0 + timedelta(hours=h + 1)) for h in range(5)]
    assert report.exit_code == 0 and report.complete and report.ran == 5
    assert report.totals() == {"fetched": 50, "evaluated": 20, "recorded": 20}
    state = json.loads(state_path(tmp_path, "demo", T0, T0 + timedelta(hours=5)).read_text())
    assert len(state["completed"]) == 5 and state["fingerprint"] == "cfg-1"


def test_backfill_stops_at_a_failed_chunk_and_resumes_there(tmp_path: Path) -> None:
    first = ChunkRecorder(fail_on={3})
    report = backfill(tmp_path, first)
    assert report.exit_code == 1 and not report.complete
    assert len(first.calls) == 3, "stops at the failed chunk"

    second = ChunkRecorder()
    report = backfill(tmp_path, second)
    assert second.calls[0] == (T0 + timedelta(hours=2), T0 + timedelta(hours=3)), "resumes at the failed chunk"
    assert len(second.calls) == 3
    assert report.resumed == 2 and report.ran == 3 and report.complete

    third = ChunkRecorder()
    report = backfill(tmp_path, third)
    assert third.calls == [] and report.resumed == 5 and report.exit_code == 0


def test_a_chunk_that_raises_fails_the_backfill_without_losing_progress(tmp_path: Path) -> None:
    report = backfill(tmp_path, ChunkRecorder(raise_on={2}))
    assert report.exit_code == 1
    assert "ConnectionError: source unreachable" in (report.chunks[-1].error or "")
    again = ChunkRecorder()
    backfill(tmp_path, again)
    assert len(again.calls) == 4


def test_a_changed_config_runs_every_chunk_again(tmp_path: Path) -> None:
    backfill(tmp_path, ChunkRecorder())
    rerun = ChunkRecorder()
    backfill(tmp_path, rerun, fingerprint="cfg-2-with-a-new-metric")
    assert len(rerun.calls) == 5


def test_unsettled_chunks_run_but_are_not_recorded_as_done(tmp_path: Path) -> None:
    backfill(tmp_path, ChunkRecorder(), settled_before=T0 + timedelta(hours=3, minutes=30))
    again = ChunkRecorder()
    backfill(tmp_path, again)
    assert again.calls == [(T0 + timedelta(hours=h), T0 + timedelta(hours=h + 1)) for h in (3, 4)]


def test_a_dry_run_backfill_neither_reads_nor_writes_state(tmp_path: Path) -> None:
    backfill(tmp_path, ChunkRecorder(), dry_run=True)
    assert not list(tmp_path.glob("*.json"))
    backfill(tmp_path, ChunkRecorder())
    dry = ChunkRecorder()
    backfill(tmp_path, dry, dry_run=True)
    assert len(dry.calls) == 5


def test_two_backfills_of_the_same_window_do_not_run_at_once(tmp_path: Path) -> None:
    path = state_path(tmp_path, "demo", T0, T0 + timedelta(hours=5))
    with FileLock(str(path.with_suffix(".lock"))), pytest.raises(LedgerBusyError, match="another backfill"):
        backfill(tmp_path, ChunkRecorder())


def test_backfill_logs_one_line_per_chunk_without_a_terminal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="shared.monitoring.backfill"):
        backfill(tmp_path, ChunkRecorder())
    lines = [r.getMessage() for r in caplog.records if "chunk " in r.getMessage()]
    assert len(lines) == 5
    assert lines[0] == (
        "backfill demo: chunk 1/5 [2026-11-20T00:00:00Z, 2026-11-20T01:00:00Z): ok, fetched 10 evaluated 4 recorded 4"
    )


def test_a_chunk_cut_short_by_its_item_limit_runs_again_next_time(tmp_path: Path) -> None:
    class LimitedOnce(ChunkRecorder):
        def __call__(self, since: datetime, until: datetime) -> Outcome:
            outcome = super().__call__(since, until)
            outcome.counts["more_available"] = len(self.calls) == 1  # type: ignore[assignment]
            return outcome

    first = LimitedOnce()
    backfill(tmp_path, first)
    assert len(first.calls) == 5
    again = ChunkRecorder()
    backfill(tmp_path, again)
    assert again.calls == [(T0, T0 + timedelta(hours=1))]
