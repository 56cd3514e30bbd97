"""The CSV ledger: versions, torn lines, compaction, and runs that overlap."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from pathlib import Path

from shared.evaluation.item import DatasetItem
from shared.monitoring.ledger.base import LedgerEntry
from shared.monitoring.ledger.csv_store import CsvScoredItemsStore, compact, ledger_stats, read_rows
from tests.core.conftest import write_config

REPO = Path(__file__).resolve().parents[2]


def entry(item_id: str, metric: str = "m", version: str = "v1", monitor: str = "mon") -> LedgerEntry:
    return LedgerEntry(monitor, "src", item_id, metric, version, "run-1", "2026-11-22T00:00:00Z")


def items(*ids: str) -> list[DatasetItem]:
    return [DatasetItem(id=i) for i in ids]


def test_only_unrecorded_metric_versions_are_pending(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = CsvScoredItemsStore("mon", "src", path=tmp_path / "l.csv")
        await store.open("r1")
        await store.record([entry("a", "m", "v1"), entry("a", "n", "v1"), entry("b", "m", "v1")])
        await store.close()

        again = CsvScoredItemsStore("mon", "src", path=tmp_path / "l.csv")
        pending = await again.filter_unscored(items("a", "b", "c"), {"m": "v1", "n": "v1"})
        by_id = {p.item.id: p.metric_names for p in pending}
        assert "a" not in by_id  # fully scored
        assert by_id["b"] == frozenset({"n"})  # only the missing metric
        assert by_id["c"] is None  # new: every metric
        changed = await again.filter_unscored(items("a"), {"m": "v2", "n": "v1"})
        assert changed[0].metric_names == frozenset({"m"})  # a new version re-opens only that metric
        other_monitor = CsvScoredItemsStore("other", "src", path=tmp_path / "l.csv")
        assert len(await other_monitor.filter_unscored(items("a"), {"m": "v1"})) == 1

    asyncio.run(scenario())


def test_ids_with_commas_and_quotes_round_trip(tmp_path: Path) -> None:
    odd = ["C01:1700000000.000100", "a,b", 'say "hi"', "ünï,cödé"]

    async def scenario() -> None:
        await CsvScoredItemsStore("mon", "src", path=tmp_path / "l.csv").record([entry(i) for i in odd])
        fresh = CsvScoredItemsStore("mon", "src", path=tmp_path / "l.csv")
        assert await fresh.filter_unscored(items(*odd), {"m": "v1"}) == []
        assert len(await fresh.filter_unscored(items("a", "b"), {"m": "v1"})) == 2

    asyncio.run(scenario())


def test_torn_last_line_is_ignored_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"

    async def scenario() -> None:
        store = CsvScoredItemsStore("mon", "src", path=path)
        await store.record([entry("a")])
        with path.open("a", encoding="utf-8") as handle:
            handle.write("mon,src,b,m,v")  # a crash mid-append
        fresh = CsvScoredItemsStore("mon", "src", path=path)
        pending = await fresh.filter_unscored(items("a", "b"), {"m": "v1"})
        assert [p.item.id for p in pending] == ["b"]
        await fresh.record([entry("b")])

    asyncio.run(scenario())
    rows = list(read_rows(path))
    assert [r[2] for r in rows] == ["a", "b"]
    with path.open(newline="", encoding="utf-8") as handle:
        assert all(len(r) == 7 for r in csv.reader(handle))


def test_compact_drops_duplicates_and_stats_count(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"

    async def scenario() -> None:
        s1 = CsvScoredItemsStore("mon", "src", path=path)
        await s1.record([entry("a"), entry("b")])

    asyncio.run(scenario())
    with path.open("a", encoding="utf-8") as handle:  # what two processes without the lock could leave
        handle.write("mon,src,a,m,v1,run-2,2026-11-22T00:00:01Z\n")
    assert ledger_stats(path).rows == 3
    assert compact(path) == (3, 2)
    stats = ledger_stats(path)
    assert stats.rows == 2 and stats.unique_keys == 2 and stats.per_monitor == {"mon": 2}


def test_two_runs_at_once_never_score_an_item_twice(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(tmp_path, traces_file)
    cmd = [sys.executable, "-m", "shared.cli", "-q", "run", str(config), "--json"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-500:] for o in outputs]
    import json

    evaluated = sorted(json.loads(o[0])["counts"]["evaluated"] for o in outputs)
    assert evaluated[0] == 0 and evaluated[1] > 0  # the second waited, then found nothing new
    rows = list(read_rows(tmp_path / "ledger.csv"))
    keys = [(r[2], r[3]) for r in rows]
    assert len(keys) == len(set(keys)) == evaluated[1] * 2
