"""Experiment mode of the Langfuse sink (`publish.langfuse.experiment: true`), through the real SDK.

The fake ingests the SDK's OTLP export and derives experiment items from the spans the way
Langfuse v4 does, so these tests see what Langfuse's experiment UI would show.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

from fakes.langfuse_server import FakeLangfuse
from starlette.requests import Request
from starlette.responses import Response
from test_langfuse_sink import results, run_context
from typer.testing import CliRunner

from shared.cli import app
from shared.evaluation.results import EvaluationResult
from shared.langfuse.experiment import dataset_item_id, experiment_id_for
from shared.langfuse.sink import LangfuseSink
from shared.monitoring.config import LangfusePublishConfig
from shared.monitoring.run_context import RunContext
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def publish(settings: Settings, res: EvaluationResult, run: RunContext, **config: Any) -> Any:
    sink = LangfuseSink(
        settings,
        LangfusePublishConfig(enabled=True, experiment=True, **config),
        retry_initial_s=0.01,
        retry_max_s=0.05,
        max_retries=2,
        read_back_timeout_s=0.5,
    )
    return asyncio.run(sink.publish(run, res))


def test_run_is_an_experiment_over_dataset_items_linked_to_the_source_traces(
    fake: FakeLangfuse, lf_settings: Settings
) -> None:
    run = run_context(lf_settings, run_id="run-1")
    report = publish(lf_settings, results(5), run)
    assert report.ok, report.error
    assert len(report.stored) == 15

    dataset = fake.state.datasets["evalmon-athena-quality"]
    items = {i["id"]: i for i in fake.state.dataset_items.values()}
    expected_ids = {dataset_item_id(dataset["name"], "athena-quality", "langfuse", f"{i:032x}"): i for i in range(5)}
    assert set(items) == set(expected_ids)
    for item_id, i in expected_ids.items():
        assert items[item_id]["sourceTraceId"] == f"{i:032x}"
        assert items[item_id]["datasetId"] == dataset["id"]

    experiment_id = experiment_id_for(dataset["name"], "run-1")
    assert report.details["experiment"]["experiment_id"] == experiment_id
    exp_items = fake.experiment_items()
    assert len(exp_items) == 5
    assert {e["experimentItemId"] for e in exp_items} == set(expected_ids)
    assert {(e["experimentId"], e["experimentName"], e["experimentDatasetId"]) for e in exp_items} == {
        (experiment_id, "run-1", dataset["id"])
    }
    # The experiment carries the already-computed scores, nothing recomputed.
    first = next(e for e in exp_items if expected_ids[e["experimentItemId"]] == 2)
    by_name = {s["name"]: s for s in first["scores"]}
    assert set(by_name) == {"quality", "non_empty", "tone"}
    assert by_name["quality"]["value"] == 0.4 and by_name["quality"]["comment"] == "why 2"
    assert by_name["tone"]["value"] == "polite" and by_name["non_empty"]["value"] is True
    assert by_name["quality"]["metadata"]["source_trace_id"] == f"{2:032x}"
    # The scores on the source traces keep their deterministic ids and name the experiment.
    source = [s for s in fake.scores() if s["traceId"] == f"{2:032x}"]
    assert len(source) == 3
    assert {s["metadata"]["experiment_id"] for s in source} == {experiment_id}


def test_observation_level_items_link_the_source_observation(fake: FakeLangfuse, lf_settings: Settings) -> None:
    run = run_context(lf_settings, item_level="observation", run_id="run-obs")
    report = publish(lf_settings, results(3, observation_level=True), run, dataset_name="athena-recs")
    assert report.ok, report.error
    items = list(fake.state.dataset_items.values())
    assert {(i["datasetName"], i["sourceObservationId"]) for i in items} == {
        ("athena-recs", f"obs-{i}") for i in range(3)
    }
    assert len(fake.experiment_items()) == 3


def test_rerun_upserts_dataset_items_and_adds_one_experiment_per_run(fake: FakeLangfuse, lf_settings: Settings) -> None:
    for run_id in ("run-1", "run-2"):
        report = publish(lf_settings, results(4), run_context(lf_settings, run_id=run_id))
        assert report.ok, report.error
    assert len(fake.state.datasets) == 1 and len(fake.state.dataset_items) == 4
    per_run = Counter(e["experimentName"] for e in fake.experiment_items())
    assert per_run == {"run-1": 4, "run-2": 4}
    assert len(fake.scores()) == 12 + 2 * 12  # source scores upserted by id + each experiment's own


class NoOtelIngestion(FakeLangfuse):
    """A server that accepts everything except the OpenTelemetry export (experiments are lost)."""

    async def _otel_traces(self, request: Request) -> Response:
        return self._guard(request, "/api/public/otel/v1/traces") or self._bad("Service unavailable", 503)


def test_an_experiment_that_does_not_arrive_is_a_sink_failure() -> None:
    with NoOtelIngestion() as fake:
        settings = Settings(
            langfuse_base_url=fake.url,
            langfuse_public_key=fake.public_key,
            langfuse_secret_key=fake.secret_key,
            langfuse_timeout_s=2,
        )
        report = publish(settings, results(3), run_context(settings, run_id="run-x"))
    assert report.error and "experiment: 3 of 3 item(s) not recorded" in report.error
    assert report.stored == set()  # the ledger records none of these pairs: the next run redoes them
    source = [s for s in fake.scores() if s["traceId"] in {f"{i:032x}" for i in range(3)}]
    assert len(source) == 9  # the source scores did arrive; the redo upserts them by id


def test_experiment_off_publishes_no_dataset(fake: FakeLangfuse, lf_settings: Settings) -> None:
    sink = LangfuseSink(lf_settings, LangfusePublishConfig(enabled=True))
    report = asyncio.run(sink.publish(run_context(lf_settings), results(2)))
    assert report.ok and "experiment" not in report.details
    assert not fake.state.datasets and not fake.experiment_items()
    assert all("experiment_id" not in s["metadata"] for s in fake.scores())


def evalmon_run(tmp_path: Path, env: dict[str, str], *extra: str) -> tuple[int, dict[str, Any]]:
    args = ["-q", "run", "monitoring_langfuse", "--json", "--since", "2026-11-18T00:00:00Z"]
    args += ["--until", "2026-11-18T06:00:00Z", "--set", "sampling.n=1000", "--set", "publish.langfuse.experiment=true"]
    args += ["--set", f"dedup.path={tmp_path / 'ledger.csv'}", "--set", f"publish.local.dir={tmp_path / 'runs'}"]
    result = CliRunner().invoke(app, [*args, *extra], env=env)
    assert result.stdout, result.output
    return result.exit_code, json.loads(result.stdout)


def test_evalmon_run_records_an_experiment_and_a_rerun_adds_nothing(tmp_path: Path) -> None:
    with FakeLangfuse() as fake:
        fake.seed_jsonl(REPO / "data" / "samples" / "athena_traces.jsonl")
        code, dry = evalmon_run(tmp_path, fake.env(), "--dry-run")
        assert code == 0, dry["errors"]
        assert not fake.state.datasets and not fake.experiment_items() and not fake.scores()

        code, first = evalmon_run(tmp_path, fake.env())
        assert code == 0, first["errors"]
        source_scores = [s for s in fake.scores() if "source_score_id" not in s["metadata"]]
        scored = {s["traceId"] for s in source_scores}
        assert len(scored) == first["counts"]["evaluated"] > 0
        items = fake.state.dataset_items.values()
        assert {i["sourceTraceId"] for i in items} == scored and len(items) == len(scored)
        experiment = fake.experiment_items()
        assert len(experiment) == len(scored)
        assert {e["experimentName"] for e in experiment} == {first["run_id"]}
        assert sum(len(e["scores"]) for e in experiment) == len(source_scores)

        code, second = evalmon_run(tmp_path, fake.env())
        assert code == 0 and second["counts"]["evaluated"] == 0
        assert len(fake.state.dataset_items) == len(scored)
        assert len(fake.experiment_items()) == len(scored)


def test_experiment_routes_follow_the_spec(fake: FakeLangfuse, lf_settings: Settings) -> None:
    """The fake's OTLP ingestion (JSON form) and experiment-items answers, validated against the spec."""
    from test_langfuse_contract import Checked

    checked = Checked(fake)
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "experiment-item-task",
        "kind": 1,
        "startTimeUnixNano": "1763000000000000000",
        "endTimeUnixNano": "1763000001000000000",
        "attributes": [
            {"key": k, "value": {"stringValue": v}}
            for k, v in {
                "langfuse.experiment.id": "exp-1",
                "langfuse.experiment.name": "run-1",
                "langfuse.experiment.item.id": "item-1",
                "langfuse.experiment.item.root_observation_id": "eee19b7ec3c1b174",
                "langfuse.observation.output": '"answer"',
            }.items()
        ],
    }
    response = checked.call(
        "POST", "/api/public/otel/v1/traces", body={"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    )
    assert response.status_code == 200
    response = checked.call(
        "GET",
        "/api/public/experiment-items",
        params={"fromStartTime": "2025-01-01T00:00:00Z", "experimentId": "exp-1", "fields": "core,io,scores"},
    )
    (item,) = response.json()["data"]
    assert (item["experimentItemId"], item["output"], item["scores"]) == ("item-1", "answer", [])
    publish(lf_settings, results(2), run_context(lf_settings, run_id="run-2"))
    response = checked.call(
        "GET", "/api/public/experiment-items", params={"fromStartTime": "2025-01-01T00:00:00Z", "fields": "core,scores"}
    )
    assert len(response.json()["data"]) == 3
