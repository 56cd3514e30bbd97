"""One poison value never fails a whole sink: text is made storable at the publish boundary (counted),
a row the local sink still cannot write fails alone, and no temporary file outlives a publish."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cli import app
from shared.evaluation.item import DatasetItem, Message
from shared.evaluation.metric import MetricResult
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.monitoring.ledger.csv_store import read_rows
from shared.monitoring.publishing import PublishOutcome, publish_results
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import Sink, SinkReport
from shared.monitoring.sinks.encoding import encodable_results
from shared.monitoring.sinks.local import LocalSink, read_results
from shared.settings import Settings
from tests.core.conftest import write_config
from tests.database.helpers import run_context

POISON = "bad \ud800 text"


def row(item: DatasetItem, metric: str = "m1", **result: object) -> ResultRow:
    return ResultRow(item, metric, metric, "v1", "numeric", MetricResult(score=0.5, **result))  # type: ignore[arg-type]


def poisoned() -> EvaluationResult:
    bad = DatasetItem(
        id="bad",
        query="q\x00uery",
        actual_output=POISON,
        metadata={"k\udfff": ["fine", "pair \ud83d\ude00"]},
        conversation=[Message(role="user", content="hi \ud800")],
    )
    good = DatasetItem(id="good", query="plain", actual_output="café")
    return EvaluationResult(
        [row(bad, "m1"), row(bad, "m2", explanation="why \ud800", signals={"s": "\x00"}), row(good), row(good, "m2")]
    )


def test_lone_surrogates_and_nul_are_repaired_and_counted_ids_untouched() -> None:
    source = poisoned()
    clean, repaired = encodable_results(source)
    assert repaired == 7  # query, output, metadata key and value, message, explanation, signal
    bad = clean.rows[0].item
    assert bad.id == "bad" and clean.rows[1].item is bad  # one repaired item shared by its rows
    assert bad.actual_output == "bad \ufffd text" and bad.query == "q\ufffduery"
    assert bad.metadata == {"k\ufffd": ["fine", "pair \U0001f600"]}  # a surrogate pair becomes its character
    assert bad.conversation is not None and bad.conversation[0].content == "hi \ufffd"
    assert clean.rows[1].result.explanation == "why \ufffd" and clean.rows[1].result.signals == {"s": "\ufffd"}
    assert clean.rows[2] is source.rows[2]  # clean rows are not copied
    assert source.rows[0].item.actual_output == POISON  # the run's own results are left as they were
    for value in (bad.model_dump_json(), json.dumps(clean.rows[1].result.signals)):
        value.encode("utf-8")

    untouched = EvaluationResult([row(DatasetItem(id="x", actual_output="ok"))])
    assert encodable_results(untouched) == (untouched, 0)


def publish(run: RunContext, results: EvaluationResult) -> PublishOutcome:
    return asyncio.run(publish_results(run, results, [LocalSink()]))


FORMATS = ["parquet", "csv"]


def local_run(tmp_path: Path, file_format: str = "parquet") -> RunContext:
    run = run_context(Settings())
    run.base_dir = tmp_path  # results under tmp_path/<publish.local.dir>/<run_id>
    run.config.publish.local.format = file_format  # type: ignore[assignment]
    return run


@pytest.mark.parametrize("file_format", FORMATS)
def test_the_local_sink_writes_every_row_of_a_poisoned_run(tmp_path: Path, file_format: str) -> None:
    run = local_run(tmp_path, file_format)
    outcome = publish(run, poisoned())
    assert outcome.errors == [] and outcome.repaired_text == 7
    assert len(outcome.recordable) == 4
    rows = read_results(run.results_dir)
    assert rows["id"].tolist() == ["bad", "bad", "good", "good"]
    assert rows["actual_output"].tolist()[0] == "bad \ufffd text"
    assert list(run.results_dir.rglob("*.tmp")) == []


@pytest.mark.parametrize("file_format", FORMATS)
def test_a_row_the_local_sink_cannot_write_fails_alone(tmp_path: Path, file_format: str) -> None:
    run = local_run(tmp_path, file_format)
    good, other = DatasetItem(id="good"), DatasetItem(id="other")
    results = EvaluationResult([row(good), row(good, "m2", signals={"huge": 2**70}), row(other)])
    outcome = publish(run, results)
    assert outcome.recordable == [("good", "m1"), ("other", "m1")]
    assert len(outcome.errors) == 1 and "item 'good', metric 'm2'" in outcome.errors[0]
    written = read_results(run.results_dir)
    assert list(zip(written["id"], written["metric_name"], strict=True)) == [("good", "m1"), ("other", "m1")]
    assert list(run.results_dir.rglob("*.tmp")) == []


@pytest.mark.parametrize(
    ("file_format", "blocked"),
    [("parquet", "items/part-00001.parquet"), ("csv", "results.csv")],
)
def test_no_temporary_file_survives_a_failed_write(tmp_path: Path, file_format: str, blocked: str) -> None:
    run = local_run(tmp_path, file_format)
    (run.results_dir / blocked).mkdir(parents=True)  # writing (or os.replace) onto a directory fails
    outcome = publish(run, poisoned())
    assert outcome.recordable == [] and outcome.errors
    assert list(run.results_dir.rglob("*.tmp")) == []


def test_a_poisoned_trace_no_longer_blocks_the_monitor(tmp_path: Path, traces_file: Path) -> None:
    """The reported failure: a trace whose output carries '\\ud800' failed every item, every run."""
    lines = traces_file.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if json.loads(line).get("isRootObservation"))
    root = json.loads(lines[at])
    root["output"] = "odd \ud800 answer"
    lines[at] = json.dumps(root)  # ensure_ascii: the line holds the escape \\ud800, as Langfuse can send it
    traces_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = write_config(tmp_path, traces_file)

    first_run = CliRunner().invoke(app, ["-q", "run", str(config), "--json"])
    summary = json.loads(first_run.stdout)
    assert first_run.exit_code == 0, summary
    assert summary["counts"]["repaired_text"] >= 1
    assert summary["counts"]["recorded"] == 2 * summary["counts"]["evaluated"]
    assert len(list(read_rows(tmp_path / "ledger.csv"))) == summary["counts"]["recorded"]
    assert not list((tmp_path / "runs").rglob("*.tmp"))

    second = json.loads(CliRunner().invoke(app, ["-q", "run", str(config), "--json"]).stdout)
    assert second["counts"]["evaluated"] == 0  # nothing left to redo


class PickySink(Sink):
    """Refuses any publish holding a row of item 'bad*' (a row error); optionally goes down after N publishes."""

    name = "picky"

    def __init__(self, down_after: int | None = None) -> None:
        self.calls = 0
        self.down_after = down_after

    async def publish(self, run: RunContext, results: EvaluationResult) -> SinkReport:
        self.calls += 1
        if self.down_after is not None and self.calls > self.down_after:
            return SinkReport(self.name, error="service unavailable")
        if any(r.item.id.startswith("bad") for r in results):
            return SinkReport(self.name, error="value refused", row_error=True)
        return SinkReport(self.name, stored={(r.item.id, r.metric_name) for r in results})


def test_rows_a_sink_refuses_fail_alone(tmp_path: Path) -> None:
    items = [DatasetItem(id=f"bad-{i}" if i in (3, 11) else f"ok-{i}") for i in range(16)]
    results = EvaluationResult([row(it, m) for it in items for m in ("m1", "m2")])
    sink = PickySink()
    outcome = asyncio.run(publish_results(local_run(tmp_path), results, [sink]))
    assert sorted(outcome.recordable) == sorted(
        (it.id, m) for it in items if it.id.startswith("ok") for m in ("m1", "m2")
    )
    assert outcome.errors == ["picky: 4 row(s) refused (first: item 'bad-3', metric 'm1': value refused)"]
    assert sink.calls < len(results)  # halving, not one publish per row

    down = PickySink(down_after=3)
    outcome = asyncio.run(publish_results(local_run(tmp_path), results, [down]))
    assert outcome.errors == ["picky: service unavailable"]
    assert 0 < len(outcome.recordable) < 28  # what was stored before the outage still counts
