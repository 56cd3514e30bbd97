"""The shipped athena Langfuse config, end to end against the fake through the real SDK."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cli import app
from tests.fakes.langfuse_server import FakeLangfuse

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def run(tmp_path: Path, env: dict[str, str]) -> tuple[int, dict]:
    args = ["-q", "run", "monitoring_langfuse", "--json", "--since", "2026-11-17T00:00:00Z"]
    args += ["--until", "2026-11-21T00:00:00Z", "--set", "sampling.n=1000"]
    args += ["--set", f"dedup.path={tmp_path / 'ledger.csv'}", "--set", f"publish.local.dir={tmp_path / 'runs'}"]
    result = runner.invoke(
        app,
        args,
        env=env,
    )
    assert result.stdout, result.output
    return result.exit_code, json.loads(result.stdout)


def test_monitoring_langfuse_publishes_once_and_reruns_publish_nothing(tmp_path: Path) -> None:
    with FakeLangfuse() as fake:
        fake.seed_jsonl(REPO / "data" / "samples" / "athena_traces.jsonl")
        code, first = run(tmp_path, fake.env())
        assert code == 0, first["errors"]
        counts = first["counts"]
        assert counts["fetched"] >= 250 and counts["evaluated"] == counts["sampled"] >= 250
        stored = fake.scores()
        assert counts["published_langfuse"] == len(stored) > 0
        per_pair = Counter((s["traceId"], s["name"]) for s in stored)
        assert set(per_pair.values()) == {1}
        assert {s["name"] for s in stored} >= {"citation_validity", "athena_decision_present"}
        sample = next(s for s in stored if s["name"] == "citation_validity")
        assert sample["metadata"]["monitor"] == "athena_recommendation"

        code, second = run(tmp_path, fake.env())
        assert code == 0 and second["counts"]["evaluated"] == 0
        assert second["counts"]["published_langfuse"] == 0
        assert len(fake.scores()) == len(stored)


@pytest.mark.parametrize("bad", ["wrong-secret"])
def test_bad_credentials_fail_before_any_work(tmp_path: Path, bad: str) -> None:
    with FakeLangfuse() as fake:
        env = {**fake.env(), "LANGFUSE_SECRET_KEY": bad}
        result = runner.invoke(
            app, ["run", "monitoring_langfuse", "--set", f"dedup.path={tmp_path / 'l.csv'}"], env=env
        )
        assert result.exit_code == 2
        assert "Traceback" not in result.output and bad not in result.output
        assert not (tmp_path / "l.csv").exists()
