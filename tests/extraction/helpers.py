"""Reading generated traces back as items: from files, from the fake Langfuse, and comparing with truth."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared.evaluation.item import DatasetItem
from shared.monitoring.extractors import NUMBERS_KEY, FieldPathExtractor
from shared.monitoring.sources.base import DataSource, build_source
from shared.monitoring.window import Window
from shared.settings import Settings
from tests.extraction.shapes import BASE_TIME, Case

WINDOW = Window(BASE_TIME - timedelta(hours=30), BASE_TIME + timedelta(hours=1), explicit=True)
DEFAULT = FieldPathExtractor({})


def read_source(source: DataSource, window: Window = WINDOW) -> list[Any]:
    async def go() -> list[Any]:
        records = [record async for record in source.fetch(window)]
        await source.aclose()
        return records

    return asyncio.run(go())


def items_from_file(path: Path, extractor: Any = DEFAULT, **params: Any) -> dict[str, DatasetItem]:
    source = build_source("file", {"path": str(path), **params}, settings=Settings(), base_dir=path.parent)
    return {item.id: item for item in (extractor(r) for r in read_source(source))}


def items_from_langfuse(settings: Settings, extractor: Any = DEFAULT, **params: Any) -> dict[str, DatasetItem]:
    source = build_source("langfuse", dict(params), settings=settings, base_dir=Path.cwd())
    return {item.id: item for item in (extractor(r) for r in read_source(source))}


def field_errors(case: Case, item: DatasetItem) -> list[str]:
    """How an extracted item differs from what a person reads in the trace (empty: it agrees)."""
    truth = case.truth
    errors = []
    if item.query != truth.query:
        errors.append(f"query {item.query!r:.80} != {truth.query!r:.80}")
    if item.actual_output != truth.answer:
        errors.append(f"actual_output {item.actual_output!r:.80} != {truth.answer!r:.80}")
    docs = item.retrieved_content or []
    if truth.docs_contain:
        same = len(docs) == len(truth.docs) and all(e in d for e, d in zip(truth.docs, docs, strict=True))
    else:
        same = docs == truth.docs
    if not same:
        errors.append(f"retrieved_content {docs!r:.120} != {truth.docs!r:.120}")
    if item.additional_input.get(NUMBERS_KEY) != truth.numbers:
        errors.append(f"numbers {item.additional_input.get(NUMBERS_KEY)} != {truth.numbers}")
    return errors
