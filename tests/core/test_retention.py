"""Old run folders are pruned per monitor; other monitors' folders and the current run stay."""

from __future__ import annotations

from pathlib import Path

from shared.monitoring.sinks.retention import prune_runs


def _run(root: Path, run_id: str) -> Path:
    folder = root / run_id
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text("{}", encoding="utf-8")
    return folder


def test_keeps_the_newest_runs_of_the_monitor_only(tmp_path: Path) -> None:
    ours = [_run(tmp_path, f"20261130T0{h}0000Z-shop-0000000{h}") for h in range(5)]
    neighbour = _run(tmp_path, "20261129T000000Z-shop-eu-00000000")  # a monitor whose name extends ours
    unrelated = tmp_path / "20261129T000000Z-shop-notarun"  # no summary.json: not a run folder
    unrelated.mkdir()
    removed = prune_runs(tmp_path, "shop", keep=2, current_run_id=ours[-1].name)
    assert removed == ours[:3]
    assert [p.exists() for p in ours] == [False, False, False, True, True]
    assert neighbour.exists() and unrelated.exists()


def test_a_run_in_progress_is_never_removed(tmp_path: Path) -> None:
    first = _run(tmp_path, "20261130T000000Z-shop-00000000")
    _run(tmp_path, "20261130T010000Z-shop-00000001")
    assert prune_runs(tmp_path, "shop", keep=1, current_run_id=first.name) == []
