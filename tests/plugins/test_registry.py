"""The one plug-in mechanism: registries resolve keys, built-ins by module, installed packages through
the `evalmon.plugins` entry points (loaded once, only when a name is unknown), and dotted paths."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from shared import registry as registry_module
from shared.errors import ConfigError
from shared.monitoring.config import SamplingConfig
from shared.monitoring.extractors import extractor_registry, register_extractor, resolve_extractor
from shared.monitoring.sampling import check_sampling, make_sampler, sampler_registry
from shared.monitoring.sinks.base import sink_registry
from shared.monitoring.sources.base import source_registry
from shared.registry import ENTRY_POINT_GROUP, InstalledPlugins, Registry

WIDGETS: Registry[Callable[[], str]] = Registry("widget")


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., list[int]]:
    """Pretend packages are installed: `installed(name=source)` writes each module and declares it as
    an `evalmon.plugins` entry point; returns a list counting entry-point scans."""
    scans: list[int] = []
    points: list[metadata.EntryPoint] = []
    monkeypatch.setattr(registry_module, "_installed", InstalledPlugins())
    monkeypatch.syspath_prepend(str(tmp_path))

    def entry_points(*, group: str) -> list[metadata.EntryPoint]:
        scans.append(1)
        return [point for point in points if point.group == group]

    monkeypatch.setattr(registry_module.metadata, "entry_points", entry_points)

    def install(**modules: str) -> list[int]:
        for name, source in modules.items():
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            points.append(metadata.EntryPoint(name=name, value=name, group=ENTRY_POINT_GROUP))
        return scans

    return install


BLUE = """
from tests.plugins.test_registry import WIDGETS

@WIDGETS.decorator("blue")
def blue() -> str:
    return "blue"
"""


def test_installed_plugins_load_once_and_only_for_a_name_not_known(installed: Callable[..., list[int]]) -> None:
    scans = installed(plugin_blue=BLUE)
    WIDGETS.register("red", lambda: "red")
    assert WIDGETS.resolve("red")() == "red"
    assert scans == [], "a known name never scans the installed packages"
    assert WIDGETS.resolve("blue")() == "blue"
    with pytest.raises(ConfigError) as error:
        WIDGETS.resolve("green", field="widget")
    assert error.value.field == "widget" and error.value.choices == ["blue", "red"]
    assert scans == [1], "installed packages are loaded once per process"


def test_a_broken_plugin_package_is_named_when_a_name_is_unknown(installed: Callable[..., list[int]]) -> None:
    installed(plugin_broken="raise ImportError('needs bigquery')", plugin_blue=BLUE)
    assert WIDGETS.resolve("blue")() == "blue", "the other packages still load"
    with pytest.raises(ConfigError, match="failed to load: plugin_broken"):
        WIDGETS.resolve("green")


def test_dotted_paths_still_resolve_without_loading_installed_plugins(installed: Callable[..., list[int]]) -> None:
    scans = installed(plugin_blue=BLUE)
    assert WIDGETS.resolve("json:dumps") is json.dumps
    assert scans == []
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module'"):
        WIDGETS.resolve("no_such_module:thing")


def test_a_key_names_one_plugin() -> None:
    widgets: Registry[object] = Registry("widget", reserved=("default",))
    widgets.register("one", json.dumps)
    widgets.register("one", json.dumps)  # the same plug-in again (a module imported twice) is fine
    with pytest.raises(ValueError, match=r"already registered by json\.dumps"):
        widgets.register("one", json.loads)
    with pytest.raises(ValueError, match="reserved"):
        widgets.register("default", json.loads)
    with pytest.raises(ValueError, match="without ':'"):
        widgets.register("a:b", json.loads)


def test_built_ins_are_registered_by_their_own_decorators() -> None:
    from shared.langfuse.sink import LangfuseSink
    from shared.monitoring.sources.file import FileDataSource
    from shared.slack.thread import thread_to_item

    assert source_registry.resolve("file") is FileDataSource
    assert sink_registry.resolve("langfuse") is LangfuseSink
    assert extractor_registry.resolve("slack_thread") is thread_to_item
    assert {"all", "random", "most_recent", "oldest", "rate", "stratified"} <= set(sampler_registry.keys())
    assert resolve_extractor("default", {}, "slack_thread") is thread_to_item


def test_unknown_sampler_and_bad_sampler_params_are_config_errors() -> None:
    with pytest.raises(ConfigError) as unknown:
        make_sampler(SamplingConfig(strategy="sometimes"))
    assert unknown.value.field == "sampling.strategy"
    assert unknown.value.choices == ["all", "most_recent", "oldest", "random", "rate", "stratified"]
    with pytest.raises(ConfigError) as extra:
        check_sampling(SamplingConfig(strategy="random", n=5, params={"per_session": 2}))
    assert extra.value.field == "sampling.params.per_session" and extra.value.message == "unknown key"


def test_a_registered_extractor_is_used_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.evaluation.item import DatasetItem

    monkeypatch.setattr(extractor_registry, "_items", dict(extractor_registry._items))

    @register_extractor("ticket")
    def ticket(record: dict[str, str]) -> DatasetItem:
        return DatasetItem(id=record["ticket"], query=record["subject"])

    extract = resolve_extractor("ticket", {}, None)
    assert extract({"ticket": "T-1", "subject": "refund"}).query == "refund"
    with pytest.raises(
        ConfigError,
        match=r"unknown extractor 'tickets'; did you mean 'ticket'\? \(valid: default, slack_thread, ticket\)",
    ):
        resolve_extractor("tickets", {}, None)
