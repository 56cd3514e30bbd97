"""One trace file feeds several monitors (the Langfuse source's filters on the file source), and a
score lands in its trace's environment unless the config names one."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.errors import ConfigError
from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.sources.base import build_source
from shared.settings import Settings
from tests.extraction.helpers import WINDOW, items_from_file, items_from_langfuse
from tests.extraction.shapes import Case, generate, write_rows, write_v3
from tests.fakes.langfuse_server import FakeLangfuse


@pytest.fixture
def mixed() -> list[Case]:
    """Traces of three apps, two environments, several users and tags, in one file."""
    return [c for shape in ("plain_rag", "tool_agent", "single_call") for c in generate(shape, 30, seed=3)]


FILTERS: list[dict[str, Any]] = [
    {"trace_name": "rag-app"},
    {"environment": "staging"},
    {"environment": ["staging", "production"], "trace_name": "research-agent"},
    {"tags": ["mobile"]},
    {"tags": ["tool_agent", "web"], "tags_match": "all"},
    {"tags": ["tool_agent", "web"], "tags_match": "any"},
    {"user_id": "user-3"},
]


def wanted(cases: list[Case], filters: dict[str, Any]) -> set[str]:
    def keep(trace: dict[str, Any]) -> bool:
        environments = filters.get("environment")
        environments = [environments] if isinstance(environments, str) else environments
        tags = set(filters.get("tags", []))
        if filters.get("trace_name") and trace["name"] != filters["trace_name"]:
            return False
        if environments and trace["environment"] not in environments:
            return False
        if filters.get("user_id") and trace["userId"] != filters["user_id"]:
            return False
        if tags:
            have = set(trace["tags"])
            return have >= tags if filters.get("tags_match") == "all" else bool(have & tags)
        return True

    return {c.id for c in cases if keep(c.trace)}


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
def test_file_source_filters_like_the_langfuse_source(
    tmp_path: Path, fake: FakeLangfuse, lf_settings: Settings, mixed: list[Case], filters: dict[str, Any]
) -> None:
    v3_file = write_v3(mixed, tmp_path / "traces.jsonl")
    fake.seed_jsonl(v3_file)
    expected = wanted(mixed, filters)
    assert 0 < len(expected) < len(mixed)

    assert set(items_from_file(v3_file, **filters)) == expected
    assert set(items_from_file(write_rows(mixed, tmp_path / "rows.jsonl"), **filters)) == expected
    assert set(items_from_langfuse(lf_settings, **filters)) == expected


def test_table_rows_filter_by_their_columns(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "actual_output", "trace_name", "environment", "tags", "user_id", "timestamp"])
        at = "2026-11-22T08:00:00Z"
        writer.writerow(["a", "x", "chat", "production", '["web", "beta"]', "u1", at])
        writer.writerow(["b", "y", "chat", "staging", "web", "u2", at])
        writer.writerow(["c", "z", "search", "production", "mobile, beta", "u1", at])
    assert set(items_from_file(path, trace_name="chat")) == {"a", "b"}
    assert set(items_from_file(path, environment="production", tags=["beta"])) == {"a", "c"}
    assert set(items_from_file(path, tags=["web", "beta"], tags_match="all")) == {"a"}
    assert set(items_from_file(path, user_id="u2")) == {"b"}


def test_an_unknown_filter_names_the_valid_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        build_source("file", {"path": "x.jsonl", "trace_names": "a"}, settings=Settings(), base_dir=tmp_path)
    assert "trace_name" in str(error.value) and "source.trace_names" in str(error.value)


def run_publishing(tmp_path: Path, settings: Settings, environment: str | None) -> None:
    config = {
        "monitor": "env-check",
        "source": {"type": "langfuse"},
        "window": {"since": WINDOW.since.isoformat(), "until": WINDOW.until.isoformat()},
        "metrics": [{"key": "non_empty"}],
        "dedup": {"store": "none"},
        "publish": {
            "local": {"dir": str(tmp_path / "runs")},
            "langfuse": {"enabled": True, "environment": environment},
        },
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    summary = OnlineMonitor.from_yaml(path, settings=settings, base_dir=tmp_path).run()
    assert summary.status == "ok", summary.errors


def test_scores_land_in_their_traces_environment(
    tmp_path: Path, fake: FakeLangfuse, lf_settings: Settings, mixed: list[Case]
) -> None:
    fake.seed_jsonl(write_v3(mixed, tmp_path / "traces.jsonl"))
    run_publishing(tmp_path, lf_settings, environment=None)
    environment_of = {c.id: c.trace["environment"] for c in mixed}
    scores = fake.scores()
    assert len(scores) == len(mixed)
    assert {s["environment"] for s in scores} == {"production", "staging"}
    assert all(s["environment"] == environment_of[s["traceId"]] for s in scores)


def test_a_configured_environment_wins(
    tmp_path: Path, fake: FakeLangfuse, lf_settings: Settings, mixed: list[Case]
) -> None:
    fake.seed_jsonl(write_v3(mixed, tmp_path / "traces.jsonl"))
    run_publishing(tmp_path, lf_settings, environment="evals")
    assert {s["environment"] for s in fake.scores()} == {"evals"}
