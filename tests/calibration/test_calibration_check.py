"""`calibration:` in a monitor config: a run warns when a judge's latest kappa against people is below
the floor, reads the judge scores again only when the labels or the judges changed, and never fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.errors import ConfigError
from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.summary import RunSummary
from shared.settings import Settings
from tests.fakes.langfuse_server import FakeLangfuse

from .project import HUMAN, METRIC, config_file, human_verdicts, judge_rows, judged, publish_to_langfuse, seed_labels

CALIBRATION = {"human": HUMAN, "min_kappa": 0.4, "min_n": 20}


def run(fake: FakeLangfuse, config: Path, monkeypatch: pytest.MonkeyPatch) -> RunSummary:
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    return OnlineMonitor.from_yaml(config, base_dir=config.parent).run()


def calibration_warnings(summary: RunSummary) -> list[str]:
    return [w for w in summary.warnings if w.startswith("calibration")]


def score_reads(fake: FakeLangfuse) -> int:
    return fake.requests["GET /api/public/v3/scores"]


def labelled_project(fake: FakeLangfuse, settings: Settings, agreement: Any, n: int = 40) -> None:
    items = judged(n)
    publish_to_langfuse(settings, judge_rows(items))
    seed_labels(fake, human_verdicts(items, agreement), at=datetime.now(UTC) - timedelta(hours=2))


def test_a_judge_that_disagrees_with_people_makes_the_run_warn(
    fake: FakeLangfuse, lf_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labelled_project(fake, lf_settings, "inverted")
    config = config_file(tmp_path, calibration=CALIBRATION)
    fake.reset_counters()
    summary = run(fake, config, monkeypatch)
    assert summary.status == "ok"
    [warning] = calibration_warnings(summary)
    assert f"judge '{METRIC}' (version v1)" in warning and "kappa -0.96, below min_kappa 0.40" in warning
    assert "40 labelled item(s)" in warning and f"--human {HUMAN}" in warning
    first_reads = score_reads(fake)

    fake.reset_counters()
    again = run(fake, config, monkeypatch)
    assert calibration_warnings(again) == [warning]
    assert score_reads(fake) == 1 < first_reads  # labels unchanged: one page of labels, judge scores from the cache

    seed_labels(fake, {j.trace_id: True for j in judged(40)}, at=datetime.now(UTC) - timedelta(hours=1))
    fake.reset_counters()
    relabelled = run(fake, config, monkeypatch)  # new labels: computed again
    assert score_reads(fake) == first_reads
    assert calibration_warnings(relabelled) and "kappa -0.96" not in calibration_warnings(relabelled)[0]


def test_no_warning_when_the_judge_agrees_or_too_few_items_are_labelled(
    fake: FakeLangfuse, lf_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labelled_project(fake, lf_settings, "perfect")
    assert calibration_warnings(run(fake, config_file(tmp_path, calibration=CALIBRATION), monkeypatch)) == []
    few = config_file(tmp_path, calibration={**CALIBRATION, "min_n": 41, "min_kappa": 1.0})
    assert calibration_warnings(run(fake, few, monkeypatch)) == []


def test_a_check_that_cannot_be_made_is_a_notice_not_a_failure(tmp_path: Path) -> None:
    traces = tmp_path / "traces.jsonl"
    traces.write_text("", encoding="utf-8")
    config = config_file(tmp_path, calibration=CALIBRATION, source={"type": "file", "path": str(traces)})
    summary = OnlineMonitor.from_yaml(config, base_dir=tmp_path, settings=Settings()).run()  # no Langfuse keys
    assert summary.status == "ok"
    [notice] = calibration_warnings(summary)
    assert notice.startswith("calibration check skipped:") and "LANGFUSE_PUBLIC_KEY" in notice


def test_calibration_metrics_must_be_metrics_of_the_monitor(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"calibration\.metrics names metric 'nope'.*faithfulness_judge"):
        OnlineMonitor.from_yaml(config_file(tmp_path, calibration={**CALIBRATION, "metrics": ["nope"]}))
