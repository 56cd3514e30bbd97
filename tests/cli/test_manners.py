"""CLI manners: a mistyped name gets a "did you mean", a `--set` the strategy ignores is an error,
`evalmon metrics` fits 80 columns, and every command's help shows an example."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from shared import cli
from shared.cli import app

runner = CliRunner()


def write_config(tmp_path: Path, **changes: object) -> Path:
    (tmp_path / "traces.csv").write_text(
        "id,timestamp,actual_output\nt1,2026-11-20T00:00:00Z,hello\n", encoding="utf-8"
    )
    config = {
        "monitor": "manners",
        "source": {"type": "file", "path": "traces.csv"},
        "metrics": [{"key": "non_empty"}],
        "dedup": {"store": "none"},
        **changes,
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"metrics": [{"key": "non_empyt"}]}, "metrics.0.key: unknown metric 'non_empyt'; did you mean 'non_empty'?"),
        (
            {"sampling": {"strategy": "randm"}},
            "sampling.strategy: unknown sampling strategy 'randm'; did you mean 'random'?",
        ),
        ({"source": {"type": "fiel", "path": "x"}}, "source.type: unknown source type 'fiel'; did you mean 'file'?"),
        ({"extractor": "defualt"}, "extractor: unknown extractor 'defualt'; did you mean 'default'?"),
        ({"publish": {"sinks": [{"type": "postgress"}]}}, "unknown sink type 'postgress'; did you mean 'postgres'?"),
        ({"dedup": {"store": "nonee"}}, "dedup.store: invalid value 'nonee'; did you mean 'none'?"),
        ({"metrcs": []}, "metrcs: unknown key; did you mean 'metrics'?"),
        (
            {"source": {"type": "file", "path": "x", "fromat": "csv"}},
            "source.fromat: unknown key; did you mean 'format'?",
        ),
        ({"metrics": [{"key": "latency", "params": {"max_secnds": 3}}]}, "did you mean 'max_seconds'?"),
    ],
)
def test_a_mistyped_name_gets_a_suggestion_and_the_valid_choices(
    tmp_path: Path, changes: dict[str, object], expected: str
) -> None:
    result = runner.invoke(app, ["validate", str(write_config(tmp_path, **changes))])
    assert result.exit_code == 2
    line = " ".join(result.output.split())
    assert expected in line and "(valid: " in line


def test_a_far_off_name_gets_no_suggestion(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(write_config(tmp_path, metrics=[{"key": "zzzz"}]))])
    assert result.exit_code == 2 and "did you mean" not in result.output and "(valid: " in result.output


def test_a_mistyped_config_name_gets_a_suggestion() -> None:
    result = runner.invoke(app, ["validate", "monitoring_locl"])
    assert result.exit_code == 2
    assert "no config file 'monitoring_locl'; did you mean 'monitoring_local'?" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("sampling", "override", "field"),
    [
        ({"strategy": "all"}, "sampling.n=5", "sampling.n"),
        ({"strategy": "rate", "rate": 0.5}, "sampling.n=5", "sampling.n"),
        ({"strategy": "random", "n": 3}, "sampling.rate=0.5", "sampling.rate"),
        ({"strategy": "most_recent", "n": 3}, "sampling.seed=4", "sampling.seed"),
    ],
)
def test_setting_a_key_the_strategy_ignores_is_an_error(
    tmp_path: Path, sampling: dict[str, object], override: str, field: str
) -> None:
    config = write_config(tmp_path, sampling=sampling)
    result = runner.invoke(app, ["run", str(config), "--dry-run", "--set", override])
    assert result.exit_code == 2
    line = " ".join(result.output.split())
    assert f"{field}: sampling strategy '{sampling['strategy']}' ignores '{field.split('.')[1]}'" in line


def test_setting_a_key_the_strategy_reads_works(tmp_path: Path) -> None:
    config = write_config(tmp_path, sampling={"strategy": "all"})
    for overrides in (["sampling.strategy=random", "sampling.n=1"], ["sampling.strategy=rate", "sampling.rate=1"]):
        args = [arg for override in overrides for arg in ("--set", override)]
        result = runner.invoke(app, ["run", str(config), "--dry-run", *args])
        assert result.exit_code == 0, result.output


def test_metrics_shows_direction_and_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(cli, "out", Console(file=buffer, width=80, force_terminal=False))
    assert runner.invoke(app, ["metrics"]).exit_code == 0
    lines = buffer.getvalue().splitlines()
    assert len(lines) > 20 and max(cell_len(line) for line in lines) <= 80
    assert lines[0].split() == ["key", "kind", "direction", "threshold"]
    by_key = {line.split()[0]: line for line in lines if line and not line.startswith(" ")}
    assert "flag: 1 is bad" in by_key["pii_leakage"] and "lower is better" in by_key["latency"]
    assert "higher is better" in by_key["faithfulness"]
    text = " ".join(buffer.getvalue().split())
    assert "Share of the answer's claims supported by the retrieved content" in text, "descriptions are whole"
    assert "Needs: actual_output, retrieved_content." in text


def leaf_commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if hasattr(command, "commands"):  # a group
        for name, sub in command.commands.items():
            yield from leaf_commands(sub, (*path, name))
    else:
        yield path


def test_every_command_help_shows_an_example() -> None:
    commands = list(leaf_commands(typer.main.get_command(app)))
    assert ("runs", "prune") in commands and ("db", "migrate") in commands and len(commands) >= 15
    for path in commands:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())
        assert f"Example: evalmon {' '.join(path)}" in text, f"`evalmon {' '.join(path)} --help` has no example"
