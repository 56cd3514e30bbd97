"""`evalmon runs list|prune`: what run folders there are, and deleting the old ones on demand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from typer.testing import CliRunner

from shared.cli import app

runner = CliRunner()
NOW = datetime.now(UTC)


def make_run(root: Path, monitor: str, age: timedelta, *, status: str | None = "ok", size: int = 100) -> Path:
    started = NOW - age
    folder = root / f"{started:%Y%m%dT%H%M%SZ}-{monitor}-{abs(hash((monitor, age))) % 16**8:08x}"
    folder.mkdir(parents=True)
    (folder / "results.bin").write_bytes(b"x" * size)
    if status is not None:
        (folder / "summary.json").write_text(json.dumps({"status": status}), encoding="utf-8")
    return folder


def test_list_shows_each_monitors_runs_oldest_first(tmp_path: Path) -> None:
    old = make_run(tmp_path, "shop", timedelta(days=40), status="failed")
    new = make_run(tmp_path, "shop", timedelta(hours=1), size=3000)
    other = make_run(tmp_path, "shop-eu", timedelta(days=2))
    (tmp_path / "notes").mkdir()  # not a run folder

    shown = runner.invoke(app, ["runs", "list", "--dir", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == [old.name, other.name, new.name]
    assert "failed" in lines[0] and "2.9 KB" in lines[2]
    assert lines[-1].startswith("3 run folder(s), 3.2 KB")

    listed = json.loads(runner.invoke(app, ["runs", "list", "shop", "--dir", str(tmp_path), "--json"]).stdout)
    assert [(r["run_id"], r["status"], r["bytes"]) for r in listed] == [
        (old.name, "failed", 120),
        (new.name, "ok", 3016),
    ]


def test_prune_keeps_the_newest_of_each_monitor(tmp_path: Path) -> None:
    shop = [make_run(tmp_path, "shop", timedelta(days=d)) for d in (5, 4, 3, 2, 1)]
    eu = [make_run(tmp_path, "shop-eu", timedelta(days=d)) for d in (5, 4)]

    preview = runner.invoke(app, ["runs", "prune", "--keep", "2", "--dir", str(tmp_path), "--dry-run"])
    assert preview.exit_code == 0 and "would delete 3 run folder(s)" in preview.stdout
    assert all(p.exists() for p in shop + eu)

    done = runner.invoke(app, ["runs", "prune", "shop", "--keep", "2", "--dir", str(tmp_path)])
    assert done.exit_code == 0 and "deleted 3 run folder(s)" in done.stdout
    assert [p.exists() for p in shop] == [False, False, False, True, True]
    assert all(p.exists() for p in eu), "another monitor's runs are not this monitor's"


def test_prune_by_age_and_both_rules_together(tmp_path: Path) -> None:
    ancient = make_run(tmp_path, "shop", timedelta(days=60))
    old = make_run(tmp_path, "shop", timedelta(days=31))
    recent = make_run(tmp_path, "shop", timedelta(days=3))

    both = runner.invoke(app, ["runs", "prune", "--older-than", "30d", "--keep", "2", "--dir", str(tmp_path)])
    assert both.exit_code == 0
    assert (ancient.exists(), old.exists(), recent.exists()) == (False, True, True), "--keep 2 spares the 31-day one"

    aged = runner.invoke(app, ["runs", "prune", "--older-than", "30d", "--dir", str(tmp_path)])
    assert aged.exit_code == 0 and (old.exists(), recent.exists()) == (False, True)


def test_a_run_still_going_is_never_pruned_but_an_abandoned_one_is(tmp_path: Path) -> None:
    going = make_run(tmp_path, "shop", timedelta(hours=2), status=None)
    died = make_run(tmp_path, "shop", timedelta(days=3), status=None)
    assert runner.invoke(app, ["runs", "prune", "--keep", "0", "--dir", str(tmp_path)]).exit_code == 0
    assert going.exists() and not died.exists()
    assert "incomplete" in runner.invoke(app, ["runs", "list", "--dir", str(tmp_path)]).stdout


def test_prune_needs_a_rule_and_a_readable_age(tmp_path: Path) -> None:
    nothing = runner.invoke(app, ["runs", "prune", "--dir", str(tmp_path)])
    assert nothing.exit_code == 2 and "--keep N, --older-than AGE" in nothing.output
    bad = runner.invoke(app, ["runs", "prune", "--older-than", "a month", "--dir", str(tmp_path)])
    assert bad.exit_code == 2 and "--older-than: 'a month' is not an age like 30d" in bad.output


def test_a_config_names_its_monitor_and_runs_folder(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")
    (tmp_path / "config").mkdir()
    config = tmp_path / "config" / "shop.yaml"
    body = {
        "monitor": "shop",
        "source": {"type": "file", "path": "traces.csv"},
        "metrics": [{"key": "non_empty"}],
        "publish": {"local": {"dir": "state/runs"}},
    }
    config.write_text(yaml.safe_dump(body), encoding="utf-8")
    runs = tmp_path / "state" / "runs"
    kept = make_run(runs, "shop", timedelta(days=1))
    make_run(runs, "shop", timedelta(days=2))
    done = runner.invoke(app, ["runs", "prune", str(config), "--keep", "1"])
    assert done.exit_code == 0 and f"in {runs}" in done.stdout
    assert [p.name for p in runs.iterdir()] == [kept.name]
