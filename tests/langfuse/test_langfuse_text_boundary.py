"""A score whose comment or metadata carries a lone surrogate is published (repaired), not a failed batch."""

import asyncio
import dataclasses

from fakes.langfuse_server import FakeLangfuse
from test_langfuse_sink import results, run_context

from shared.evaluation.results import EvaluationResult
from shared.langfuse.sink import LangfuseSink
from shared.monitoring.config import LangfusePublishConfig
from shared.monitoring.publishing import publish_results
from shared.settings import Settings


def test_a_poisoned_explanation_is_published_repaired(fake: FakeLangfuse, lf_settings: Settings) -> None:
    rows = results(5).rows
    poisoned = rows[0].result.model_copy(update={"explanation": "odd \ud800 why", "model": "m\x00"})
    rows[0] = dataclasses.replace(rows[0], result=poisoned)
    run = run_context(lf_settings)
    sink = LangfuseSink(lf_settings, LangfusePublishConfig(enabled=True), retry_initial_s=0.01)
    outcome = asyncio.run(publish_results(run, EvaluationResult(rows), [sink]))
    assert outcome.errors == [] and outcome.repaired_text == 2
    assert len(outcome.recordable) == len(rows)
    comments = {s["comment"] for s in fake.scores()}
    assert "odd \ufffd why" in comments
