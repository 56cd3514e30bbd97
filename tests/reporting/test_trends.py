"""`evalmon report`: trends over a monitor's runs from its runs folder (the Postgres path is in tests/database)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from shared.cli import app
from shared.reporting.stats import wilson_interval
from shared.reporting.trends import build_trends


def _write_run(
    runs: Path, run_id: str, until: str, *, n: int, pass_rate: float, alerts: int = 0, status: str = "ok"
) -> None:
    folder = runs / run_id
    folder.mkdir(parents=True)
    summary = {
        "run_id": run_id,
        "monitor": "shop",
        "status": status,
        "window": {"since": until.replace("T10", "T09"), "until": until},
        "counts": {"fetched": n + 5, "evaluated": n},
        "metrics": {"citation_validity": {"n": n, "pass_rate": pass_rate, "mean": pass_rate, "errors": 1}},
        "alerts": [{"metric": "citation_validity"}] * alerts,
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


def _history(runs: Path) -> None:
    _write_run(runs, "20261129T101000Z-shop-0001", "2026-11-29T10:00:00+00:00", n=100, pass_rate=0.9)
    _write_run(runs, "20261129T103000Z-shop-0002", "2026-11-29T10:30:00+00:00", n=50, pass_rate=0.6, alerts=1)
    _write_run(runs, "20261129T111000Z-shop-0003", "2026-11-29T11:00:00+00:00", n=80, pass_rate=0.85)
    _write_run(runs, "20261129T121000Z-shop-0004", "2026-11-29T12:00:00+00:00", n=80, pass_rate=0.1, status="dry_run")
    _write_run(runs, "20261129T101000Z-other-0001", "2026-11-29T10:00:00+00:00", n=10, pass_rate=0.0)


def test_per_run_points_have_wilson_bands_and_skip_dry_runs(tmp_path: Path) -> None:
    _history(tmp_path)
    trends = build_trends("shop", runs_dir=tmp_path)
    assert [p.n for p in trends.metrics] == [100, 50, 80]  # no dry run, no other monitor
    second = trends.metrics[1]
    assert second.value == 0.6 and (second.low, second.high) == wilson_interval(30, 50)
    assert [v.alerts for v in trends.volume] == [0, 1, 0] and trends.volume[0].fetched == 105


def test_hourly_points_pool_their_runs(tmp_path: Path) -> None:
    _history(tmp_path)
    trends = build_trends("shop", runs_dir=tmp_path, every="hour")
    ten, eleven = trends.metrics
    assert (ten.n, ten.runs, ten.errors) == (150, 2, 2)
    assert ten.value == (90 + 30) / 150 and eleven.value == 0.85


def test_the_command_writes_html_and_charts_or_prints_json(tmp_path: Path) -> None:
    _history(tmp_path / "runs")
    config = tmp_path / "shop.yaml"
    config.write_text(
        "monitor: shop\nsource: {type: file, path: x.jsonl}\nmetrics: [{key: citation_validity}]\n"
        f"dedup: {{store: none}}\npublish: {{local: {{dir: {tmp_path / 'runs'}}}}}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    result = runner.invoke(
        app, ["report", str(config), "--out", str(tmp_path / "out"), "--since", "2026-11-29T10:15:00Z"]
    )
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 2  # the metric's trend and the volume
    assert (tmp_path / "out" / "trend_citation_validity.png").is_file() and (tmp_path / "out" / "volume.png").is_file()

    result = runner.invoke(app, ["report", "shop", "--json", "--every", "day"])  # a monitor name: ./data/runs
    assert result.exit_code == 0 and json.loads(result.stdout)["metrics"] == []
    result = runner.invoke(app, ["report", str(config), "--every", "week"])
    assert result.exit_code == 2 and "--every" in result.output
    result = runner.invoke(app, ["report", str(config), "--by", "environment"])
    assert result.exit_code == 2 and "DATABASE_URL" in result.output
