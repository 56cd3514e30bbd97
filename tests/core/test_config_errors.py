"""Bad input: exit 2 with one clear line naming the file and the field; no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cli import app
from tests.core.conftest import write_config

runner = CliRunner()


def run_cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("override", "field", "expected"),
    [
        ("bogus=1", "bogus", "unknown key (valid: alerts"),
        ("metrics.0.key=nope", "metrics.0.key", "unknown metric 'nope' (valid: "),
        ("extractor=no_such_module:fn", "extractor", "cannot import module 'no_such_module'"),
        ("sampling.strategy=random", "sampling", "needs 'n'"),
        ("source.api_key=abc123", "source.api_key", "inline secrets are not accepted"),
        ("evaluation.concurrency=-4", "evaluation.concurrency", "greater than 0"),
        (
            "sampling.strategy=sometimes",
            "sampling.strategy",
            "valid: all, most_recent, oldest, random, rate, stratified",
        ),
        ("source.type=ftp", "source.type", "unknown source type 'ftp' (valid: file, langfuse, slack)"),
        ("source.colour=red", "source.colour", "unknown key (valid: environment, format"),
        ("metrics.0.params.unknown_param=1", "metrics.0.params.unknown_param", "unknown key (valid: "),
    ],
)
def test_config_error_is_one_line_naming_file_and_field(
    tmp_path: Path, traces_file: Path, override: str, field: str, expected: str
) -> None:
    config = write_config(tmp_path, traces_file)
    code, output = run_cli("run", str(config), "--set", override)
    assert code == 2, output
    line = output.strip()
    assert "\n" not in line and "Traceback" not in output
    assert f"{config}: {field}:" in line
    assert expected in line
    if "unknown metric" in expected:
        assert "citation_validity, " in line and "pii_leakage" in line


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("monitor: x\nsource: [unclosed\n", encoding="utf-8")
    code, output = run_cli("run", str(bad))
    assert code == 2
    assert f"{bad}: line" in output and "malformed YAML" in output and "Traceback" not in output


def test_inline_secret_value_is_rejected_even_under_an_innocent_key(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(tmp_path, traces_file, description="key sk-lf-1234567890abcdef")
    code, output = run_cli("validate", str(config))
    assert code == 2 and "description" in output and "looks like a secret" in output


def test_env_interpolation_gives_typed_values_and_defaults(
    tmp_path: Path, traces_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.monitoring.loader import load_monitor_config

    config = write_config(
        tmp_path,
        traces_file,
        sampling={"strategy": "random", "n": "${SAMPLE_N}", "seed": "${SEED:-11}"},
    )
    monkeypatch.setenv("SAMPLE_N", "25")
    loaded = load_monitor_config(config).config
    assert loaded.sampling.n == 25 and loaded.sampling.seed == 11

    monkeypatch.delenv("SAMPLE_N")
    code, output = run_cli("validate", str(config))
    assert code == 2 and "SAMPLE_N is not set" in output and "sampling.n" in output


def test_unknown_bare_config_name_lists_known_configs() -> None:
    code, output = run_cli("run", "no_such_monitor")
    assert code == 2 and "no config file 'no_such_monitor'" in output and "monitoring_local" in output


def test_debug_shows_traceback(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(tmp_path, traces_file)
    result = runner.invoke(app, ["--debug", "run", str(config), "--set", "bogus=1"])
    assert result.exit_code != 0 and result.exception is not None


def test_alert_rule_on_a_metric_the_monitor_does_not_run(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(tmp_path, traces_file, alerts={"rules": [{"metric": "ghost", "threshold": 0.5}]})
    code, output = run_cli("validate", str(config))
    assert code == 2 and "alert rule names metric 'ghost'" in output and "valid: non_empty, pii_leakage" in output
