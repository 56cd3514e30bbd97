"""Every way a config can fail to load is a config error: exit 2 and one line naming file and field,
for every command that loads configs; `--debug` adds a traceback and never changes the exit code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from shared.cli import app
from shared.monitoring.loader import load_monitor_config
from tests.core.conftest import write_config
from tests.fakes.langfuse_server import FakeLangfuse

runner = CliRunner()

COMMANDS = {
    "validate": lambda config: ["validate", config],
    "run": lambda config: ["run", config, "--dry-run"],
    "schedule": lambda config: ["schedule", config, "--once"],
    "backfill": lambda config: ["backfill", config, "--since", "2026-01-01", "--until", "2026-01-02", "--dry-run"],
}


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def assert_one_line_config_error(code: int, output: str, *expected: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("config error: ")
    for text in expected:
        assert text in lines[0], output


@pytest.fixture
def binary_config(tmp_path: Path) -> Path:
    path = tmp_path / "binary.yaml"
    path.write_bytes(bytes([0x9C, 0x00, 0xFF, 0x13]) * 64)
    return path


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_binary_file_is_named_as_not_text(command: str, binary_config: Path) -> None:
    code, output = invoke(*COMMANDS[command](str(binary_config)))
    assert_one_line_config_error(code, output, f"{binary_config}: ", "not a UTF-8 text file")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_directory_is_not_a_missing_config(command: str, tmp_path: Path) -> None:
    folder = tmp_path / "monitoring_local.yaml"  # even when its name matches a bundled config
    folder.mkdir()
    code, output = invoke(*COMMANDS[command](str(folder)))
    assert_one_line_config_error(code, output, f"{folder}: is a directory, not a config file")


def test_a_missing_path_never_falls_back_to_a_bundled_config_of_the_same_name(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "monitoring_local.yaml"
    code, output = invoke("validate", str(missing))
    assert_one_line_config_error(code, output, f"{missing}: no such file")


def test_nul_bytes_in_utf8_are_not_text(tmp_path: Path) -> None:
    path = tmp_path / "nul.yaml"
    path.write_text("monitor: x\x00\n", encoding="utf-8")
    code, output = invoke("validate", str(path))
    assert_one_line_config_error(code, output, f"{path}: not a text file (NUL byte at offset 10)")


def test_a_byte_order_mark_is_accepted(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(tmp_path, traces_file)
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    code, output = invoke("validate", str(config))
    assert code == 0, output


@pytest.mark.parametrize(
    ("override", "field", "expected"),
    [
        ("window.lookback_minutes=1e20", "window.lookback_minutes", "less than or equal to"),
        ("window.settle_minutes=1e300", "window.settle_minutes", "less than or equal to"),
        ("window.lookback_minutes=.inf", "window.lookback_minutes", "less than or equal to"),
        ("schedule.interval_minutes=1e20", "schedule.interval_minutes", "less than or equal to"),
        ("dedup.lock_timeout_s=1e300", "dedup.lock_timeout_s", "less than or equal to"),
        ("metrics.0.threshold=.nan", "metrics.0.threshold", "nan is not a usable number"),
        ("metrics.1.threshold=-.inf", "metrics.1.threshold", "-inf is not a usable number"),
        ("window.since=2026-13-45", "window.since", "Input should be a valid datetime"),
    ],
)
@pytest.mark.parametrize("command", ["run", "schedule", "backfill"])
def test_numbers_out_of_range_and_not_finite(
    tmp_path: Path, traces_file: Path, command: str, override: str, field: str, expected: str
) -> None:
    config = write_config(tmp_path, traces_file, schedule={"interval_minutes": 60})
    code, output = invoke(*COMMANDS[command](str(config)), "--set", override)
    assert_one_line_config_error(code, output, f"{config}: {field}: ", expected)


def test_nan_in_the_yaml_file_itself(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(tmp_path, traces_file, alerts={"rules": [{"metric": "non_empty", "threshold": 0.5}]})
    config.write_text(config.read_text(encoding="utf-8").replace("threshold: 0.5", "threshold: .nan"))
    code, output = invoke("validate", str(config))
    assert_one_line_config_error(code, output, f"{config}: alerts.rules.0.threshold: nan is not a usable number")


def test_an_impossible_date_in_the_file(tmp_path: Path, traces_file: Path) -> None:
    config = write_config(tmp_path, traces_file)
    config.write_text(config.read_text(encoding="utf-8") + "window: {since: 2026-13-45}\n", encoding="utf-8")
    code, output = invoke("validate", str(config))
    assert_one_line_config_error(code, output, f"{config}: malformed YAML value: month must be in 1..12")


def test_env_refs_stand_wherever_yaml_allows_a_scalar(
    tmp_path: Path, traces_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALMON_T_SAMPLE", "4")
    monkeypatch.setenv("EVALMON_T_THRESHOLD", "0.25")
    monkeypatch.setenv("EVALMON_T_TRACES", str(traces_file))
    config = tmp_path / "flow.yaml"
    config.write_text(
        "monitor: flow_${EVALMON_T_SUFFIX:-x}\n"
        "source: {type: file, path: ${EVALMON_T_TRACES}}\n"
        "sampling: {strategy: random, n: ${EVALMON_T_SAMPLE}, seed: ${EVALMON_T_SEED:-3}}\n"
        "metrics: [{key: non_empty, threshold: ${EVALMON_T_THRESHOLD}}, {key: pii_leakage, name: p${EVALMON_T_N:-1}}]\n"
        "plugins: [${EVALMON_T_PLUGIN:-shared.metrics}]\n"
        f"dedup: {{path: '{tmp_path}/ledger.csv'}}\n",
        encoding="utf-8",
    )
    loaded = load_monitor_config(config).config
    assert loaded.monitor == "flow_x"
    assert loaded.source.params()["path"] == str(traces_file)
    assert (loaded.sampling.n, loaded.sampling.seed) == (4, 3)
    assert loaded.metrics[0].threshold == 0.25 and loaded.metrics[1].name == "p1"
    assert loaded.plugins == ["shared.metrics"]

    monkeypatch.delenv("EVALMON_T_SAMPLE")
    code, output = invoke("validate", str(config))
    assert_one_line_config_error(
        code, output, f"{config}: sampling.n: environment variable EVALMON_T_SAMPLE is not set"
    )


def test_a_yaml_error_near_an_env_ref_shows_the_ref_not_a_placeholder(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("monitor: x\nsource: {type: ${T}, path: [unclosed}\n", encoding="utf-8")
    code, output = invoke("validate", str(config))
    assert_one_line_config_error(code, output, f"{config}: line 2", "malformed YAML")
    assert "evalmon_env_ref" not in output


# -- --debug --------------------------------------------------------------------------------------


@pytest.fixture
def fake_langfuse() -> Iterator[FakeLangfuse]:
    with FakeLangfuse() as server:
        yield server


def langfuse_config(tmp_path: Path) -> Path:
    config = {
        "monitor": "debug_exit_codes",
        "source": {"type": "langfuse", "trace_name": "anything"},
        "metrics": [{"key": "non_empty"}],
        "dedup": {"path": str(tmp_path / "ledger.csv")},
        "publish": {"local": {"dir": str(tmp_path / "runs")}},
    }
    path = tmp_path / "langfuse.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.parametrize("debug", [False, True])
def test_debug_never_changes_the_exit_code_of_a_wrong_langfuse_key(
    tmp_path: Path, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    monkeypatch.setenv("LANGFUSE_BASE_URL", fake_langfuse.url)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", fake_langfuse.public_key)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-wrong-key-for-this-test")
    args = ["run", str(langfuse_config(tmp_path))]
    code, output = invoke(*(["--debug", *args] if debug else args))
    assert code == 2, output
    assert output.strip().splitlines()[-1].startswith("config error: ")
    assert ("Traceback" in output) is debug
    assert "sk-lf-wrong-key-for-this-test" not in output


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_debug_adds_a_traceback_to_the_same_exit_code(command: str, binary_config: Path) -> None:
    code, output = invoke("--debug", *COMMANDS[command](str(binary_config)))
    assert code == 2, output
    assert "Traceback" in output
    assert output.strip().splitlines()[-1].startswith(f"config error: {binary_config}: not a UTF-8 text file")


def test_env_refs_inside_a_set_value(tmp_path: Path, traces_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALMON_T_SAMPLE", "7")
    config = write_config(tmp_path, traces_file)
    loaded = load_monitor_config(config, ["sampling={strategy: random, n: ${EVALMON_T_SAMPLE}}"]).config
    assert loaded.sampling.strategy == "random" and loaded.sampling.n == 7
