"""Text every sink can store, repaired once at the publish boundary (`publish_results`).

Sources and metrics can hand a run strings that no sink can write: a lone UTF-16 surrogate
('\\ud800', which Langfuse can return and `json.loads` accepts) has no UTF-8 encoding, and
Postgres `text`/`jsonb` refuse NUL. One such value used to fail the local and Postgres sinks for
every item of a run, so nothing was recorded and the next run failed the same way.

`encodable_results` repairs each such string before any sink sees it: a surrogate pair becomes the
character it encodes, a lone surrogate or a NUL becomes U+FFFD (so the spot stays visible), every
other character is unchanged. It counts the repaired values for the RunSummary. Item ids are never
rewritten: they are identities (ledger, score ids), and DatasetItem refuses ids that would need it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import orjson
from pydantic import BaseModel

from shared.evaluation.item import DatasetItem
from shared.evaluation.results import EvaluationResult, ResultRow

REPLACEMENT = "\ufffd"
NUL = "\x00"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def needs_repair(text: str) -> bool:
    """True when `text` holds a NUL or a surrogate code point (str.isascii is O(1) in CPython)."""
    if text.isascii():
        return NUL in text
    return _UNSTORABLE.search(text) is not None


def _model_fields(value: Any) -> Any:
    """orjson's fallback: a pydantic model as its fields and extras (what `TextRepair.model` walks)."""
    if isinstance(value, BaseModel):
        return (value.__dict__, value.__pydantic_extra__)
    raise TypeError(type(value).__name__)


def surely_clean(value: Any) -> bool:
    """True only when no string inside `value` can need repair; False means "walk it and see".

    orjson walks the same containers in C (strings, dicts, lists, tuples, models through
    `_model_fields`) and refuses surrogates; NUL shows as an escape in its output. Anything it
    cannot encode, or an escaped backslash-u-0000 in the text, only sends the value to the walk.
    """
    try:
        blob = orjson.dumps(value, default=_model_fields, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return False
    return b"\\u0000" not in blob


def repair_text(text: str) -> str:
    """Surrogate pairs -> their character, lone surrogates and NUL -> U+FFFD."""
    if not text.isascii():
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace(NUL, REPLACEMENT)


class TextRepair:
    """Repairs values (str, dict keys and values, lists, pydantic models) and counts repaired strings.

    Returns the very same object when nothing needed repair, so clean data costs one scan, no copy.
    """

    def __init__(self) -> None:
        self.repaired = 0

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            if not needs_repair(value):
                return value
            self.repaired += 1
            return repair_text(value)
        if isinstance(value, dict):
            return self._mapping(value)
        if isinstance(value, list | tuple):
            repaired = [self.value(v) for v in value]
            if all(new is old for new, old in zip(repaired, value, strict=True)):
                return value
            return repaired if isinstance(value, list) else tuple(repaired)
        if isinstance(value, BaseModel):
            return self.model(value)
        return value

    def _mapping(self, value: dict[Any, Any]) -> dict[Any, Any]:
        changed = False
        repaired: dict[Any, Any] = {}
        for key, item in value.items():
            new_key, new_item = self.value(key), self.value(item)
            changed = changed or new_key is not key or new_item is not item
            repaired[new_key] = new_item
        return repaired if changed else value

    def model(self, model: BaseModel, *, keep: frozenset[str] = frozenset()) -> Any:
        """The model with repaired fields (extras included); fields named in `keep` are left alone."""
        if surely_clean(model):
            return model
        updates = {
            name: new
            for name, old in model.__dict__.items()
            if name not in keep and (new := self.value(old)) is not old
        }
        extra = model.__pydantic_extra__ or {}
        updates.update({name: new for name, old in extra.items() if (new := self.value(old)) is not old})
        return model.model_copy(update=updates) if updates else model


_IDENTITY = frozenset({"id"})


def encodable_results(results: EvaluationResult) -> tuple[EvaluationResult, int]:
    """`results` with every text value storable by every sink, and how many values were repaired.

    Returns `results` itself when nothing needed repair. Items shared by several rows (one per
    metric) are checked once. Clean results, the usual case, cost one orjson pass and no walk.
    """
    unique_items = {id(row.item): row.item for row in results}
    if surely_clean([list(unique_items.values()), [row.result for row in results]]):
        return results, 0
    repair = TextRepair()
    items: dict[int, DatasetItem] = {}
    rows: list[ResultRow] = []
    for row in results:
        item = items.get(id(row.item))
        if item is None:
            item = items[id(row.item)] = repair.model(row.item, keep=_IDENTITY)
        result = repair.model(row.result)
        rows.append(
            row if item is row.item and result is row.result else dataclasses.replace(row, item=item, result=result)
        )
    if not repair.repaired:
        return results, 0
    return EvaluationResult(rows=rows), repair.repaired
