"""`evalmon calibrate` on a synthetic project whose agreement with people is known, through the real CLI,
SDK and HTTP against the fake Langfuse (and once with the judge scores in Postgres)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shared.cli import app
from shared.database.sink import PostgresSink
from shared.monitoring.calibration import CalibrationReport, calibrate_monitor, inputs_of
from shared.monitoring.monitor import OnlineMonitor
from shared.settings import Settings
from tests.fakes.langfuse_server import FakeLangfuse

from .project import (
    HUMAN,
    METRIC,
    MONITOR,
    T0,
    Agreement,
    config_file,
    human_verdicts,
    judge_rows,
    judged,
    publish_to_langfuse,
    run_context,
    seed_labels,
)

N = 200


def calibrate_cli(fake: FakeLangfuse, config: Path, *args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(app, ["calibrate", str(config), "--human", HUMAN, *args], env=fake.env())
    if "--json" in args and result.exit_code == 0:
        return 0, json.loads(result.stdout)
    return result.exit_code, result.output


def only_version(report: dict[str, Any]) -> dict[str, Any]:
    assert [m["metric"] for m in report["metrics"]] == [METRIC], report
    return report["metrics"][0]


@pytest.mark.parametrize("agreement", ["perfect", "chance", "inverted"])
def test_known_agreement_is_measured(
    fake: FakeLangfuse, lf_settings: Settings, tmp_path: Path, agreement: Agreement
) -> None:
    items = judged(N)
    publish_to_langfuse(lf_settings, judge_rows(items))
    seed_labels(fake, human_verdicts(items, agreement))

    code, report = calibrate_cli(fake, config_file(tmp_path), "--json")
    assert code == 0, report
    assert report["judge_source"] == "langfuse" and report["labelled_subjects"] == N
    figures = only_version(report)
    assert figures["n"] == N and figures["version"] == "v1" and figures["threshold"] == 0.5
    kappa, agree, confusion = figures["kappa"], figures["agreement"], figures["confusion"]
    assert sum(confusion.values()) == N
    assert kappa["low"] <= kappa["value"] <= kappa["high"]
    if agreement == "perfect":
        assert kappa["value"] == 1.0 and agree["value"] == 1.0
        assert confusion["judge_pass_human_fail"] == confusion["judge_fail_human_pass"] == 0
        assert figures["best_agreement"]["value"] == 1.0
        assert 0.4 < figures["best_threshold"]["value"] <= 0.5  # the configured threshold already agrees best
        assert figures["spearman"]["value"] > 0.8
    elif agreement == "inverted":
        assert kappa["value"] < -0.95 and agree["value"] == 0.0
        assert confusion["both_pass"] == confusion["both_fail"] == 0
        assert figures["spearman"]["value"] < -0.8
    else:
        assert abs(kappa["value"]) < 0.15 and kappa["low"] < 0 < kappa["high"]  # indistinguishable from chance
        assert 0.4 < agree["value"] < 0.6


def test_human_view_shows_kappa_and_the_confusion_matrix(
    fake: FakeLangfuse, lf_settings: Settings, tmp_path: Path
) -> None:
    items = judged(40)
    publish_to_langfuse(lf_settings, judge_rows(items))
    seed_labels(fake, human_verdicts(items, "perfect"))
    code, text = calibrate_cli(fake, config_file(tmp_path))
    assert code == 0, text
    lines = [line.split() for line in text.splitlines()]
    assert ["kappa", "1.00", "[1.00,", "1.00]"] in lines
    counts = judge_rows(items).rows
    passing = sum(1 for r in counts if r.result.passed)
    assert ["judge", "pass", str(passing), "0"] in lines and ["judge", "fail", "0", str(40 - passing)] in lines


def test_versions_sources_relabels_and_own_scores(fake: FakeLangfuse, lf_settings: Settings, tmp_path: Path) -> None:
    """Each metric version on its own; labels from any source; the latest label of a subject counts;
    scores evalmon wrote under the human name are not labels; --since selects labels by their time."""
    old, new = judged(30, seed=1), judged(30, seed=2)
    publish_to_langfuse(lf_settings, judge_rows(old, version="v1"), run_id="run-old")
    publish_to_langfuse(lf_settings, judge_rows(new, version="v2"), run_id="run-new")
    seed_labels(fake, human_verdicts(old, "inverted"), source="API", at=T0)  # user feedback, through the API
    seed_labels(fake, human_verdicts(new, "inverted"), at=T0 + timedelta(hours=1))
    seed_labels(fake, human_verdicts(new, "perfect"), at=T0 + timedelta(hours=2))  # reviewers changed their minds
    fake.seed_score(
        id="own", traceId=old[0].trace_id, name=HUMAN, value=1, dataType="BOOLEAN",
        metadata={"config_hash": "abc", "evalmon_version": "1", "monitor": MONITOR},
    )  # fmt: skip
    code, report = calibrate_cli(fake, config_file(tmp_path), "--json")
    assert code == 0, report
    by_version = {m["version"]: m for m in report["metrics"]}
    assert by_version["v1"]["n"] == 30 and by_version["v1"]["kappa"]["value"] < -0.9
    assert by_version["v2"]["n"] == 30 and by_version["v2"]["kappa"]["value"] == 1.0
    assert report["labels_read"] == 90  # the score evalmon wrote is not counted as a label

    code, recent = calibrate_cli(
        fake, config_file(tmp_path), "--json", "--since", (T0 + timedelta(minutes=30)).isoformat()
    )
    assert code == 0 and [m["version"] for m in recent["metrics"]] == ["v2"]


def test_numeric_human_scores_on_another_scale(fake: FakeLangfuse, lf_settings: Settings, tmp_path: Path) -> None:
    items = judged(60)
    publish_to_langfuse(lf_settings, judge_rows(items))
    for j in items:  # people grade 1..5, in step with the judge
        fake.seed_score(traceId=j.trace_id, name=HUMAN, value=1 + int(j.score * 4), dataType="NUMERIC")
    code, report = calibrate_cli(fake, config_file(tmp_path), "--json", "--human-threshold", "3")
    assert code == 0, report
    figures = only_version(report)
    assert figures["spearman"]["value"] > 0.95 and figures["pearson"]["value"] > 0.95
    assert figures["kappa"]["value"] == 1.0  # 3 and above on 1..5 is the judge's 0.5 and above


def test_items_with_their_own_ids_are_found_by_metric_name(
    fake: FakeLangfuse, lf_settings: Settings, tmp_path: Path
) -> None:
    """An extractor whose item ids are not trace ids: the deterministic ids miss, the trace search finds them."""
    items = judged(20)
    publish_to_langfuse(lf_settings, judge_rows(items, item_id_prefix="item-"))
    seed_labels(fake, human_verdicts(items, "perfect"))
    code, report = calibrate_cli(fake, config_file(tmp_path), "--json")
    assert code == 0 and only_version(report)["n"] == 20


def test_usage_errors_exit_2(fake: FakeLangfuse, tmp_path: Path) -> None:
    code, text = calibrate_cli(fake, config_file(tmp_path), "--metric", "nope")
    assert code == 2 and "nope" in text and METRIC in text
    code, text = calibrate_cli(fake, config_file(tmp_path), "--judge-scores", "elsewhere")
    assert code == 2 and "postgres" in text


def test_no_labels_is_not_an_error(fake: FakeLangfuse, tmp_path: Path) -> None:
    code, report = calibrate_cli(fake, config_file(tmp_path), "--json")
    assert code == 0 and report["metrics"] == [] and report["labels_read"] == 0


def test_judge_scores_from_postgres(
    fake: FakeLangfuse, migrated: Settings, lf_settings: Settings, tmp_path: Path
) -> None:
    """With DATABASE_URL set the judge scores come from Postgres: same figures as from Langfuse."""
    items = judged(80)
    rows = judge_rows(items)
    settings = migrated.model_copy(
        update={k: getattr(lf_settings, k) for k in ("langfuse_base_url", "langfuse_public_key", "langfuse_secret_key")}
    )

    async def publish() -> None:
        sink = PostgresSink(settings)
        try:
            report = await sink.publish(run_context(settings), rows)
            assert report.ok, report.error
        finally:
            await sink.aclose()

    asyncio.run(publish())
    publish_to_langfuse(lf_settings, rows)
    seed_labels(fake, human_verdicts(items, "chance"))
    publishing = config_file(tmp_path, publish={"local": {"dir": str(tmp_path / "runs")}, "postgres": True})
    from_postgres = asyncio.run(
        calibrate_monitor(inputs_of(OnlineMonitor.from_yaml(publishing, settings=settings)), HUMAN)
    )
    # The same monitor without Postgres publishing reads Langfuse, DATABASE_URL or not.
    from_langfuse = asyncio.run(
        calibrate_monitor(inputs_of(OnlineMonitor.from_yaml(config_file(tmp_path), settings=settings)), HUMAN)
    )
    assert (from_postgres.judge_source, from_langfuse.judge_source) == ("postgres", "langfuse")
    assert from_postgres.versions[0].n == 80
    assert figures(from_postgres) == figures(from_langfuse)


def figures(report: CalibrationReport) -> list[dict[str, Any]]:
    return [{k: v for k, v in version.as_dict().items() if k != "last_scored_at"} for version in report.versions]
