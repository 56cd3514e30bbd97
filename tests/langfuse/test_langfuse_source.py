"""LangfuseDataSource against the loopback fake, through the real SDK."""

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import NOW, WINDOW_SINCE, WINDOW_UNTIL
from fakes.langfuse_server import FakeLangfuse, generate_traces

from shared.errors import ConfigError, SourceError
from shared.langfuse.source import LangfuseDataSource, LangfuseSourceParams
from shared.monitoring.sources.base import build_source
from shared.monitoring.window import Window
from shared.settings import Settings
from shared.traces import Trace

WINDOW = Window(WINDOW_SINCE, WINDOW_UNTIL, explicit=True)


def make_source(settings: Settings, **params: object) -> LangfuseDataSource:
    source = build_source("langfuse", dict(params), settings=settings, base_dir=Path.cwd())
    assert isinstance(source, LangfuseDataSource)
    return source


def fetch_all(source: LangfuseDataSource, window: Window = WINDOW) -> list:
    async def go() -> list:
        return [record async for record in source.fetch(window)]

    return asyncio.run(go())


def seed_standard(fake: FakeLangfuse, n: int = 120) -> None:
    fake.seed_observations(generate_traces(n, since=WINDOW_SINCE, until=WINDOW_UNTIL, seed=1))
    # outside the window, and another app inside it: neither may be read
    fake.seed_observations(generate_traces(15, since=NOW - timedelta(hours=5), until=NOW - timedelta(hours=2), seed=2))
    fake.seed_observations(generate_traces(10, since=WINDOW_SINCE, until=WINDOW_UNTIL, seed=3, trace_name="other"))


def test_fetch_yields_complete_traces_with_requests_growing_with_pages(
    fake: FakeLangfuse, lf_settings: Settings
) -> None:
    seed_standard(fake)
    source = make_source(lf_settings, trace_name="athena", page_size=50)
    traces = fetch_all(source)

    assert len(traces) == 120
    assert len({t.id for t in traces}) == 120
    assert all(isinstance(t, Trace) and len(t.observations) == 3 for t in traces)
    first = traces[0]
    assert first.name == "athena"
    assert first.input["query"].startswith("What should I visit")  # raw string parsed as JSON
    assert first.recommendation.generation.output.startswith("In ")
    assert first.retrieve.output["documents"][0]["content"]
    assert all(WINDOW.contains(t.timestamp) for t in traces)
    # newest first, as the v2 API orders
    assert [t.timestamp for t in traces] == sorted((t.timestamp for t in traces), reverse=True)
    # 3 root pages + 1 bulk child query per page: O(pages), not O(traces)
    assert source.stats.requests == 6
    assert fake.requests["GET /api/public/v2/observations"] == 6
    assert source.stats.more_available is False


def test_filters_reach_the_server(fake: FakeLangfuse, lf_settings: Settings) -> None:
    seed_standard(fake, n=40)
    traces = fetch_all(make_source(lf_settings, tags=["beta"], user_id="user-1", environment="production"))
    assert traces and all("beta" in t.tags and t.userId == "user-1" for t in traces)
    # generate_traces: odd index -> beta, user-(i % 50): trace #1 of each app
    assert sorted(t.name for t in traces) == ["athena", "other"]


def test_max_traces_caps_the_run_and_says_more_are_available(fake: FakeLangfuse, lf_settings: Settings) -> None:
    seed_standard(fake, n=60)
    source = make_source(lf_settings, trace_name="athena", page_size=25, max_traces=30)
    traces = fetch_all(source)
    assert len(traces) == 30
    assert source.stats.more_available is True


def test_observation_level_monitor_targets_the_named_observation(fake: FakeLangfuse, lf_settings: Settings) -> None:
    seed_standard(fake, n=20)
    traces = fetch_all(make_source(lf_settings, trace_name="athena", observation_name="recommendation"))
    assert len(traces) == 20
    for trace in traces:
        assert trace.target is not None
        assert trace.target.name == "recommendation" and trace.target.type == "GENERATION"
        assert len(trace.observations) == 3  # the whole trace is still there for context


def test_metadata_is_cut_at_200_characters_unless_expanded(fake: FakeLangfuse, lf_settings: Settings) -> None:
    seed_standard(fake, n=3)
    cut = fetch_all(make_source(lf_settings, trace_name="athena"))[0]
    full = fetch_all(make_source(lf_settings, trace_name="athena", expand_metadata=["long_note"]))[0]
    assert len(cut.metadata["long_note"]) == 200
    assert len(full.metadata["long_note"]) == 300


def test_5xx_and_429_are_retried_and_nothing_is_lost(fake: FakeLangfuse, lf_settings: Settings) -> None:
    seed_standard(fake, n=150)
    fake.set_faults(error_rate=0.2, rate_limit_every=4, retry_after="0")
    source = make_source(
        lf_settings, trace_name="athena", page_size=20, max_retries=10, retry_initial_s=0.01, retry_max_s=0.05
    )
    traces = fetch_all(source)
    assert len({t.id for t in traces}) == 150
    assert fake.statuses[429] > 0 and fake.statuses[503] > 0
    assert source.stats.extra["retries"] == fake.statuses[429] + fake.statuses[503]


def test_persistent_failure_is_a_source_error(fake: FakeLangfuse, lf_settings: Settings) -> None:
    seed_standard(fake, n=5)
    fake.set_faults(error_rate=1.0)
    source = make_source(lf_settings, max_retries=2, retry_initial_s=0.01, retry_max_s=0.02)
    with pytest.raises(SourceError, match="after 2 retries"):
        fetch_all(source)


def test_check_tells_bad_credentials_from_unreachable_host(fake: FakeLangfuse) -> None:
    wrong_key = Settings(langfuse_base_url=fake.url, langfuse_public_key=fake.public_key, langfuse_secret_key="nope")
    with pytest.raises(ConfigError, match="rejected the credentials"):
        asyncio.run(make_source(wrong_key).check())
    nowhere = Settings(langfuse_base_url="http://127.0.0.1:9", langfuse_public_key="pk-lf-x", langfuse_secret_key="sk")
    with pytest.raises(SourceError, match="unreachable after 2 attempt"):
        asyncio.run(make_source(nowhere, max_retries=1, retry_initial_s=0.01).check())
    missing = Settings(langfuse_base_url=fake.url, langfuse_public_key=None, langfuse_secret_key=None)
    with pytest.raises(ConfigError, match="credentials are missing"):
        asyncio.run(make_source(missing).check())


def test_unknown_param_is_a_config_error(lf_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        make_source(lf_settings, trace_nmae="athena")
    assert LangfuseSourceParams(environment="production").environment == ["production"]
