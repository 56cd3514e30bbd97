"""An extractor's declared needs: one ExtractorNeeds type, a decorator for function extractors, a
clear config error for anything else, and sample-first only when items keep the source's ids."""

from pathlib import Path
from typing import Any

import pytest
from conftest import WINDOW_SINCE, WINDOW_UNTIL
from fakes.langfuse_server import FakeLangfuse, generate_traces

from shared.errors import ConfigError
from shared.evaluation.item import DatasetItem
from shared.monitoring.config import MonitorConfig
from shared.monitoring.extractors import FieldPathExtractor, resolve_extractor
from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.needs import ExtractorNeeds, declare_needs, needs_of
from shared.settings import Settings

READS = "GET /api/public/v2/observations"


@declare_needs(ExtractorNeeds(root_only=True, field_groups={"io"}))
def root_text(record: Any) -> DatasetItem:
    return DatasetItem(id=str(record.id), actual_output=str(record.output))


class LooseNeeds:
    """Declares needs in a shape of its own: no longer accepted in place of an ExtractorNeeds."""

    needs = "root only"

    def __call__(self, record: Any) -> DatasetItem:
        return DatasetItem(id=str(record.id))


def test_a_function_declares_its_needs_with_the_decorator() -> None:
    assert needs_of(root_text) == ExtractorNeeds(root_only=True, field_groups=frozenset({"io"}))
    assert needs_of(lambda record: record) is None


def test_needs_of_another_type_are_a_config_error_when_the_config_is_loaded() -> None:
    with pytest.raises(ConfigError, match=r"extractor: extractor LooseNeeds declares needs of type str"):
        resolve_extractor(f"{__name__}:LooseNeeds", {}, None)
    assert resolve_extractor(f"{__name__}:root_text", {}, None) is root_text


def test_an_id_path_of_its_own_means_items_are_not_known_by_the_source_ids() -> None:
    assert FieldPathExtractor({}).needs.keeps_source_ids
    assert FieldPathExtractor({"id": "id"}).needs.keeps_source_ids
    assert not FieldPathExtractor({"id": "sessionId"}).needs.keeps_source_ids
    assert not FieldPathExtractor({"id": "sessionId"}).needs.merge(ExtractorNeeds()).keeps_source_ids


def sampled_monitor(settings: Settings, tmp_path: Path, extractor_fields: dict[str, str]) -> OnlineMonitor:
    config = MonitorConfig.model_validate(
        {
            "monitor": "needs",
            "source": {"type": "langfuse", "trace_name": "athena"},
            "extractor_fields": extractor_fields,
            "metrics": [{"key": "non_empty"}],
            "sampling": {"strategy": "random", "n": 5, "seed": 1},
            "dedup": {"path": str(tmp_path / "ledger.csv")},
            "publish": {"local": {"dir": str(tmp_path / "runs")}},
        }
    )
    return OnlineMonitor(config, settings=settings, base_dir=tmp_path)


def test_a_sampled_run_with_its_own_id_path_still_scores_its_sample(
    fake: FakeLangfuse, lf_settings: Settings, tmp_path: Path
) -> None:
    """Sampling on root previews would choose items by trace id and then find other ids after
    extraction (every chosen item invalid); such an extractor is read whole, then sampled."""
    fake.seed_observations(generate_traces(40, since=WINDOW_SINCE, until=WINDOW_UNTIL, seed=4))
    by_session = sampled_monitor(lf_settings, tmp_path, {"id": "sessionId"})
    summary = by_session.run(since=WINDOW_SINCE, until=WINDOW_UNTIL)
    assert summary.status == "ok" and summary.counts.invalid == 0
    assert summary.counts.sampled == summary.counts.evaluated == 5
