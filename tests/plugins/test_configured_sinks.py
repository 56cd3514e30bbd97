"""`publish.sinks`: registered sinks by type, options checked by the sink's Params, and `required`
deciding whether the sink's failure keeps pairs out of the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shared.errors import ConfigError
from shared.evaluation.results import EvaluationResult
from shared.monitoring.config import SinkSpec
from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.publishing import configured_sinks
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import Sink, SinkParams, SinkReport, register_sink, sink_registry


class OutageParams(SinkParams):
    message: str = "service unavailable"


class Outage(Sink):
    """A sink whose service is down: it stores nothing and says so."""

    Params = OutageParams
    params: OutageParams

    async def publish(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        return SinkReport(self.name, error=self.params.message)


@pytest.fixture(autouse=True)
def outage_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sink_registry, "_items", dict(sink_registry._items))  # registered for this test only
    register_sink("outage")(Outage)


def write_monitor(root: Path, sinks: list[dict[str, object]]) -> Path:
    (root / "traces.csv").write_text(
        "id,timestamp,query,actual_output\n" + "".join(f"t{i},2026-11-20T00:0{i}:00Z,q{i},a{i}\n" for i in range(4)),
        encoding="utf-8",
    )
    config = {
        "monitor": "sinks_test",
        "source": {"type": "file", "path": str(root / "traces.csv")},
        "metrics": [{"key": "non_empty"}],
        "dedup": {"path": str(root / "ledger.csv")},
        "publish": {"local": {"dir": str(root / "runs")}, "sinks": sinks},
    }
    path = root / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.parametrize(("required", "recorded"), [(True, 0), (False, 4)])
def test_required_decides_whether_a_failing_sink_holds_back_the_ledger(
    tmp_path: Path, required: bool, recorded: int
) -> None:
    config = write_monitor(tmp_path, [{"type": "outage", "required": required, "message": "bigquery is down"}])
    summary = OnlineMonitor.from_yaml(config, base_dir=tmp_path).run()
    assert summary.counts.recorded == recorded
    assert any("outage: bigquery is down" in error for error in summary.errors)
    assert summary.status != "ok" and summary.exit_code() == 1  # the failure is reported either way


@pytest.mark.parametrize(
    ("entries", "field", "message"),
    [
        ([{"type": "postgres"}], "publish.sinks.0.type", "built-in sink: configure it under publish.postgres"),
        ([{"type": "outage"}, {"type": "outage"}], "publish.sinks.1.name", "two sinks are named 'outage'"),
        ([{"type": "outage", "colour": "red"}], "publish.sinks.0.colour", "unknown key"),
        ([{"type": "json:dumps"}], "publish.sinks.0.type", "'json:dumps' is not a Sink class"),
    ],
)
def test_a_bad_sink_entry_is_a_config_error_naming_it(
    entries: list[dict[str, object]], field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        configured_sinks([SinkSpec.model_validate(entry) for entry in entries])
    assert error.value.field == field and message in error.value.message


def test_named_entries_build_one_sink_each() -> None:
    specs = [SinkSpec.model_validate(e) for e in ({"type": "outage"}, {"type": "outage", "name": "backup"})]
    sinks = configured_sinks(specs)
    assert [(s.name, s.required, type(s)) for s in sinks] == [("outage", True, Outage), ("backup", True, Outage)]
