"""End to end: a config of source + metrics, `extractor: default`, no `extractor_fields`, scores
citations, PII and empty answers as a person reading each trace would, from a file and from Langfuse."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.sinks.local import read_results
from shared.settings import Settings
from tests.extraction.helpers import WINDOW
from tests.extraction.shapes import SHAPES, Case, generate, write_v3
from tests.fakes.langfuse_server import FakeLangfuse

N_PER_SHAPE = 80
N_ATHENA = 150  # athena plants its defects in a few percent of traces: more traces to have each
METRICS = ("citation_validity", "pii_leakage", "non_empty")
AGREEMENT = 0.97


def expected_verdict(case: Case, metric: str) -> str:
    truth = case.truth
    if metric == "non_empty":
        return "fail" if truth.empty else "pass"
    if metric == "pii_leakage":
        return "fail" if truth.pii else "pass"
    return "pass" if truth.citations_valid else "fail"  # an empty answer cites nothing: vacuously valid


def run_monitor(tmp_path: Path, source: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    config = {
        "monitor": "extraction-verdicts",
        "source": source,
        "extractor": "default",
        "window": {"since": WINDOW.since.isoformat(), "until": WINDOW.until.isoformat()},
        "sampling": {"strategy": "all"},
        "metrics": [{"key": key} for key in METRICS],
        "dedup": {"store": "none"},
        "publish": {"local": {"dir": str(tmp_path / "runs")}},
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    summary = OnlineMonitor.from_yaml(path, settings=settings, base_dir=tmp_path).run()
    assert summary.counts.invalid == 0, summary.errors
    return read_results(str(summary.results_dir)).to_dict("records")


def verdict_of(row: dict[str, Any] | None) -> str:
    if row is None or row["status"] != "ok":
        return "missing" if row is None else row["status"]  # skipped / error: no verdict at all
    return "pass" if row["passed"] is True else "fail"


def agreement(cases: list[Case], rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """(shape, metric) -> share of traces whose verdict matches a person's (a skipped empty answer
    does not: it would leave the failure out of the pass rate)."""
    by_pair = {(r["trace_id"], r["metric_name"]): r for r in rows}
    right: Counter[tuple[str, str]] = Counter()
    total: Counter[tuple[str, str]] = Counter()
    for case in cases:
        for metric in METRICS:
            total[case.shape, metric] += 1
            right[case.shape, metric] += verdict_of(by_pair.get((case.id, metric))) == expected_verdict(case, metric)
    return {key: right[key] / total[key] for key in total}


@pytest.mark.parametrize("source", ["file", "langfuse"])
def test_default_extractor_verdicts_agree_with_a_person_on_every_shape(
    tmp_path: Path, fake: FakeLangfuse, lf_settings: Settings, source: str
) -> None:
    cases = [
        case for shape in SHAPES for case in generate(shape, N_ATHENA if shape == "athena" else N_PER_SHAPE, seed=23)
    ]
    traces = write_v3(cases, tmp_path / "traces.jsonl")
    if source == "file":
        rows = run_monitor(tmp_path, {"type": "file", "path": str(traces)}, lf_settings)
    else:
        fake.seed_jsonl(traces)
        rows = run_monitor(tmp_path, {"type": "langfuse", "page_size": 200}, lf_settings)

    shares = agreement(cases, rows)
    low = {f"{shape}/{metric}": round(share, 3) for (shape, metric), share in shares.items() if share < AGREEMENT}
    assert not low, f"verdicts agree with a person on fewer than {AGREEMENT:.0%} of traces: {low}"
    # every shape has what the metrics exist to catch
    kinds = Counter((c.shape, c.truth.kind) for c in cases)
    assert all(kinds[shape, "empty"] and kinds[shape, "pii"] and kinds[shape, "dangling"] for shape in SHAPES)
