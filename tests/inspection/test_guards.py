"""Extraction guards: each warning fires on a run whose extraction is wrong and stays quiet on a
healthy one (the bundled demo included), chunk by chunk as well as all at once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, build_metric
from shared.evaluation.runner import evaluate
from shared.monitoring.guards import ExtractionGuard, is_empty, item_warnings, looks_like_status
from shared.monitoring.monitor import OnlineMonitor

from .shapes import rag_traces, write_jsonl

REPO = Path(__file__).resolve().parents[2]
EVALMON = [sys.executable, "-m", "shared.cli"]


def metrics(*specs: str | tuple[str, dict[str, Any]]) -> list[BaseMetric]:
    built = []
    for spec in specs:
        key, params = (spec, {}) if isinstance(spec, str) else spec
        built.append(build_metric(key, params=params))
    return built


def answer(i: int) -> str:
    return f"Case {i}: the roof rule {i} applies [1] and the flood rule {i + 1} too [2]."


def items(n: int, **overrides: Any) -> list[DatasetItem]:
    """Healthy items, with per-index overrides: `actual_output=lambda i: ...`."""
    built = []
    for i in range(n):
        fields: dict[str, Any] = {
            "id": f"item-{i}",
            "query": f"question {i}?",
            "actual_output": answer(i),
            "retrieved_content": [f"doc one {i}", f"doc two {i}"],
        }
        for name, make in overrides.items():
            fields[name] = make(i)
        built.append(DatasetItem(**fields))
    return built


def guard_over(ms: list[BaseMetric], its: list[DatasetItem], chunk: int | None = None) -> list[str]:
    """Items and results fed in chunks of `chunk` (all at once when None), as a chunked run does."""
    guard = ExtractionGuard(ms)
    size = chunk or len(its) or 1
    for start in range(0, len(its), size):
        part = its[start : start + size]
        guard.add_items(part)
        guard.add_results(asyncio.run(evaluate(part, ms)))
    return guard.warnings()


STANDARD = ("non_empty", "pii_leakage", "citation_validity", "refusal")


@pytest.mark.parametrize("chunk", [None, 7])
def test_a_healthy_run_has_no_warnings(chunk: int | None) -> None:
    assert guard_over(metrics(*STANDARD), items(80), chunk) == []


@pytest.mark.parametrize("chunk", [None, 7])
def test_empty_answers_on_more_than_a_fifth_of_items_warn(chunk: int | None) -> None:
    its = items(60, actual_output=lambda i: '{"output": null}' if i % 4 == 0 else answer(i))
    warnings = guard_over(metrics(*STANDARD), its, chunk)
    assert len(warnings) == 1
    assert warnings[0].startswith("actual_output is empty on 15 of 60 items (25%)")
    assert "non_empty" in warnings[0] and "pii_leakage" in warnings[0]
    # one in five is not more than a fifth
    its = items(60, actual_output=lambda i: "" if i % 5 == 0 else answer(i))
    assert guard_over(metrics(*STANDARD), its, chunk) == []


def test_missing_documents_warn_only_when_a_metric_reads_them() -> None:
    its = items(40, retrieved_content=lambda i: None if i % 2 else [f"doc {i}"])
    assert [w.split(" is empty")[0] for w in guard_over(metrics(*STANDARD), its)] == ["retrieved_content"]
    assert guard_over(metrics("non_empty", "pii_leakage"), its) == []


def test_a_query_is_watched_when_a_metric_reads_it() -> None:
    its = items(30, query=lambda i: None)
    assert guard_over(metrics("non_empty"), its) == []
    reading_query = metrics(("non_empty", {"field": "query"}))
    assert guard_over(reading_query, its)[0].startswith("query is empty on 30 of 30 items")


@pytest.mark.parametrize("chunk", [None, 9])
def test_status_objects_in_place_of_answers_warn(chunk: int | None) -> None:
    status = lambda i: json.dumps({"status": "completed", "steps": 3 + i % 4, "id": f"run-{i}"})  # noqa: E731
    warnings = guard_over(metrics(*STANDARD), items(40, actual_output=status), chunk)
    assert any(w.startswith("actual_output looks like a status object") and "40 of 40" in w for w in warnings)


def test_status_detection_tells_reports_from_answers() -> None:
    assert looks_like_status('{"status": "completed", "steps": 4}')
    assert looks_like_status('{"success": true, "id": "a1", "detail": {"state": "done"}}')
    assert not looks_like_status('{"decision": "approve", "rationale": "The roof was replaced in 2021 [2]."}')
    assert not looks_like_status('{"status": "ok", "message": "Your claim was approved and paid out today."}')
    assert not looks_like_status('{"score": 3}')
    assert not looks_like_status("The status is completed in 4 steps.")
    assert is_empty('{"output": null}') and is_empty("  \u200b ") and is_empty("null") and is_empty([" "])
    assert not is_empty('{"status": "completed"}') and not is_empty(["doc"])


@pytest.mark.parametrize("chunk", [None, 11])
def test_the_same_answer_on_most_items_warns(chunk: int | None) -> None:
    same = lambda i: "Thank you for your question." if i % 3 else answer(i)  # noqa: E731
    warnings = guard_over(metrics("non_empty", "pii_leakage"), items(60, actual_output=same), chunk)
    assert warnings == [
        "the same actual_output on 40 of 60 items (67%): 'Thank you for your question.'; "
        "the extractor may be reading a fixed value rather than each answer"
    ]
    half = lambda i: "Thank you for your question." if i % 2 else answer(i)  # noqa: E731
    assert guard_over(metrics("non_empty"), items(60, actual_output=half)) == []
    assert guard_over(metrics("non_empty"), items(15, actual_output=lambda i: "same")) == []  # too few to tell


@pytest.mark.parametrize("chunk", [None, 13])
def test_a_metric_that_fails_every_item_warns(chunk: int | None) -> None:
    uncited = lambda i: f"Case {i} is fine."  # noqa: E731
    ms = metrics(("citation_validity", {"when_no_citations": "fail"}))
    warnings = guard_over(ms, items(50, actual_output=uncited), chunk)
    assert warnings == [
        "citation_validity gave every one of 50 items the score 0: "
        "a metric that never varies is probably not reading what you expect"
    ]
    assert guard_over(ms, items(49, actual_output=uncited)) == []  # below 50 items a constant is not telling


def test_a_check_that_passes_everything_with_the_best_score_is_healthy() -> None:
    # no PII, no refusal, every answer present: what a healthy app looks like
    assert guard_over(metrics("pii_leakage", "refusal", "non_empty"), items(120)) == []


def test_a_constant_middling_score_warns() -> None:
    one_of_two_valid = lambda i: f"Rule {i} [1] and rule {i} [7]."  # noqa: E731
    warnings = guard_over(metrics("citation_validity"), items(60, actual_output=one_of_two_valid))
    assert warnings and warnings[0].startswith("citation_validity gave every one of 60 items the score 0.5")


def test_skipped_rows_warn_with_their_cause() -> None:
    ms = metrics("grounding_overlap")
    its = items(50, retrieved_content=lambda i: None if i % 3 == 0 else [f"roof rule {i} flood rule {i + 1}"])
    result = asyncio.run(evaluate(its, ms))
    results_only = ExtractionGuard(ms)  # a chunk whose items went elsewhere: the skip speaks for itself
    results_only.add_results(result)
    assert results_only.warnings() == [
        "grounding_overlap skipped 17 of 50 rows (34%) for missing retrieved_content: its pass rate leaves them out"
    ]
    both = ExtractionGuard(ms)
    both.add_items(its)
    both.add_results(result)
    (warning,) = both.warnings()  # one warning naming the cause and its effect
    assert warning.startswith("retrieved_content is empty on 17 of 50 items (34%)")
    assert warning.endswith("(grounding_overlap skipped them, so their pass rates leave them out)")


def test_skips_a_metric_makes_by_design_do_not_warn() -> None:
    ms = metrics(("citation_validity", {"when_no_citations": "skip"}))
    its = items(40, actual_output=lambda i: f"Case {i} is fine." if i % 2 else answer(i))
    assert guard_over(ms, its) == []


def test_item_warnings_need_no_results() -> None:
    status = lambda i: '{"status": "completed", "steps": 4}'  # noqa: E731
    warnings = item_warnings(items(30, actual_output=status), metrics("non_empty"))
    assert [w.split(" ")[0:3] for w in warnings] == [
        ["actual_output", "looks", "like"],
        ["the", "same", "actual_output"],
    ]


# -- whole runs ------------------------------------------------------------------------------


def rag_config(tmp_path: Path, traces: Path, extractor_fields: dict[str, str]) -> Path:
    config = {
        "monitor": "rag_guarded",
        "source": {"type": "file", "path": str(traces), "format": "observations"},
        "extractor_fields": extractor_fields,
        "metrics": [{"key": k} for k in STANDARD],
        "dedup": {"store": "none"},
        "publish": {"local": {"dir": str(tmp_path / "runs")}},
    }
    path = tmp_path / "rag.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_a_run_reading_the_root_status_says_so_in_its_summary(tmp_path: Path) -> None:
    traces = write_jsonl(tmp_path / "rag.jsonl", rag_traces(60))
    config = rag_config(tmp_path, traces, {"actual_output": "output", "retrieved_content": "retrieve.output"})
    summary = OnlineMonitor.from_yaml(config, base_dir=tmp_path).run(dry_run=True, keep_results=True)
    assert summary.status == "dry_run"  # warnings never turn a run red
    text = "\n".join(summary.warnings)
    assert "actual_output looks like a status object, not an answer, on 60 of 60 items" in text
    assert "the same actual_output on 60 of 60 items" in text
    saved = json.loads((Path(summary.results_dir or "") / "summary.json").read_text(encoding="utf-8"))
    assert saved["warnings"] == summary.warnings


def test_the_same_traces_read_right_are_quiet(tmp_path: Path) -> None:
    traces = write_jsonl(tmp_path / "rag.jsonl", rag_traces(60))
    config = rag_config(tmp_path, traces, {"actual_output": "llm.output", "retrieved_content": "retrieve.output"})
    summary = OnlineMonitor.from_yaml(config, base_dir=tmp_path).run(dry_run=True)
    assert summary.metrics["citation_validity"].pass_rate == 1.0
    assert summary.warnings == []


def test_the_demo_is_warning_free(tmp_path: Path) -> None:
    # no ledger: the repo's own demo ledger may already hold these items (after `make demo`)
    done = subprocess.run(
        [*EVALMON, "run", "monitoring_local", "--json", "--dry-run", "--set", "dedup.store=none"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    summary = json.loads(done.stdout)
    assert summary["counts"]["evaluated"] > 50
    assert summary["warnings"] == []


def test_the_console_summary_prints_warnings(tmp_path: Path) -> None:
    traces = write_jsonl(tmp_path / "rag.jsonl", rag_traces(30))
    config = rag_config(tmp_path, traces, {"actual_output": "output"})
    done = subprocess.run(
        [*EVALMON, "run", str(config), "--dry-run"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("warning: ")]
    assert any("looks like a status object" in line for line in lines), done.stdout


def test_repeated_answers_are_found_past_the_exact_counting_capacity() -> None:
    from shared.monitoring.guards import HeavyHitters

    counter = HeavyHitters(slots=8)
    for i in range(300):  # 100 distinct answers first, then one answer 200 times
        counter.add(f"answer {i}" if i < 100 else "the fixed answer")
    top = counter.top()
    assert top is not None and top[0] == "the fixed answer"
    assert 200 - 300 / 9 <= top[1] <= 200 and not counter.exact


def test_a_handful_of_items_is_too_few_to_warn_on_shares() -> None:
    status = lambda i: '{"status": "completed", "steps": 4}' if i < 3 else ""  # noqa: E731
    assert guard_over(metrics(*STANDARD), items(9, actual_output=status)) == []
    assert len(guard_over(metrics(*STANDARD), items(10, actual_output=status))) == 2


def test_the_job_summary_lists_the_warnings(tmp_path: Path) -> None:
    from tests.scheduling.test_workflows import run_step

    traces = write_jsonl(tmp_path / "rag.jsonl", rag_traces(30))
    rag_config(tmp_path, traces, {"actual_output": "output"})
    code, job_summary = run_step(tmp_path, "rag.yaml", dry_run=True)
    assert code == 0
    assert "actual_output looks like a status object, not an answer, on 30 of 30 items" in job_summary
    assert "the same actual_output on 30 of 30 items" in job_summary
