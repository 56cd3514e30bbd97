"""Retrieved documents out of whatever a retriever, a search tool or a prompt holds.

Shapes unpacked (and JSON text of each): a list of strings; a list of dicts with `page_content`
(LangChain Documents), `content`, `text`, `snippet`, `chunk` or `document`; a dict holding the
list under `documents`, `items`, `results`, `chunks`, `nodes`, `hits`, `matches` or `context`;
LlamaIndex nodes (`{"node": {"text": ...}, "score": ...}`); text with numbered `[n]` items.

Each document keeps its own number (`n`, `number`, `rank`, `index`, `position`, `id`, or its
`[n]` in a prompt) so a citation `[n]` in the answer names the document the model saw as `[n]`;
documents without numbers are numbered by position, from 1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.traces import parse_jsonish

DOC_TEXT_KEYS = (
    "page_content",
    "pageContent",
    "content",
    "text",
    "snippet",
    "chunk",
    "document",
    "passage",
    "body",
)
CONTAINER_KEYS = (
    "documents",
    "docs",
    "items",
    "results",
    "chunks",
    "nodes",
    "source_nodes",
    "hits",
    "matches",
    "context",
    "source_documents",
    "passages",
    "sources",
    "output",
)
NUMBER_KEYS = ("n", "number", "rank", "index", "position", "id")
_MAX_DEPTH = 6
# `[3] text` at a line start (optionally a list bullet before it)
_ITEM_START = re.compile(r"^[ \t]*(?:[-*][ \t]+)?\[(\d{1,4})\][ \t]*", re.MULTILINE)


@dataclass(frozen=True)
class Doc:
    """One retrieved document: its text and the number the model saw it under (None: by position)."""

    text: str
    number: int | None = None


def documents_of(value: Any, depth: int = 0) -> list[Doc]:
    """Every document in a value, in order (blank ones included: they still hold a number)."""
    if depth > _MAX_DEPTH or value is None:
        return []
    if isinstance(value, str):
        parsed = parse_jsonish(value)
        if parsed is not value and isinstance(parsed, Mapping | list):
            return documents_of(parsed, depth + 1)
        numbered = numbered_items(value)
        return numbered if numbered else [Doc(value)]
    if isinstance(value, list | tuple):
        docs: list[Doc] = []
        for element in value:
            if isinstance(element, Mapping) and _container(element) is None:
                single = _doc_from_mapping(element)
                docs.extend([single] if single is not None else [])
            elif isinstance(element, str):
                docs.append(Doc(element))
            else:
                docs.extend(documents_of(element, depth + 1))
        return docs
    if isinstance(value, Mapping):
        inner = _container(value)
        if inner is not None:
            return documents_of(inner, depth + 1)
        single = _doc_from_mapping(value, strict=True)
        return [single] if single is not None else []
    return []


def _container(mapping: Mapping[str, Any]) -> Any:
    """The list of documents a mapping holds (None when it is a document itself)."""
    if any(isinstance(mapping.get(k), str) for k in DOC_TEXT_KEYS) or isinstance(mapping.get("node"), Mapping):
        return None
    for key in CONTAINER_KEYS:
        inner = mapping.get(key)
        if isinstance(inner, str):
            inner = parse_jsonish(inner)
        if isinstance(inner, list | Mapping) and inner:
            return inner
        if isinstance(inner, str) and inner.strip():  # `{"context": "[1] ...\n[2] ..."}`
            return inner
    return None


def _doc_from_mapping(mapping: Mapping[str, Any], *, strict: bool = False) -> Doc | None:
    """One document dict -> Doc. In a list, a dict without known text keys is still a document (as
    JSON); alone (`strict`) it is not, since a status object such as `{"status": "ok"}` is no document."""
    node = mapping.get("node")
    if isinstance(node, Mapping):  # LlamaIndex NodeWithScore
        inner = _doc_from_mapping(node, strict=True)
        if inner is not None:
            return Doc(inner.text, inner.number if inner.number is not None else number_of(mapping))
    for key in DOC_TEXT_KEYS:
        text = mapping.get(key)
        if isinstance(text, str):
            return Doc(text, number_of(mapping))
    if strict:
        return None
    return Doc(json.dumps(mapping, ensure_ascii=False, default=str), number_of(mapping))


def number_of(mapping: Mapping[str, Any]) -> int | None:
    """A document's own number: its first integer-valued number key, here or in its metadata."""
    for source in (mapping, mapping.get("metadata")):
        if not isinstance(source, Mapping):
            continue
        for key in NUMBER_KEYS:
            value = source.get(key)
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                return value
            if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 6:
                return int(value)
    return None


def numbered_items(text: str) -> list[Doc]:
    """The `[n] ...` items of a text, in order: each runs to the next item or a blank line."""
    starts = list(_ITEM_START.finditer(text))
    docs: list[Doc] = []
    seen: set[int] = set()
    for index, start in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        body = text[start.end() : end]
        blank = re.search(r"\n[ \t]*\n", body)
        if blank:
            body = body[: blank.start()]
        number = int(start.group(1))
        if number in seen:  # a second block (an earlier turn quoted again): the first one counts
            continue
        seen.add(number)
        docs.append(Doc(body.strip(), number))
    return docs


def numbered(docs: Iterable[Doc]) -> tuple[list[str], list[int]]:
    """Documents -> (texts, numbers), ordered by number, blank documents dropped (their numbers go).

    Own numbers are kept when every document has one, they are distinct and they look like display
    numbers (not database ids far beyond the count); numbering from 0 is shifted to start at 1,
    because answers cite `[1]` for the first document. Otherwise documents are numbered by position.
    """
    listed = list(docs)
    numbers = [d.number for d in listed]
    own = all(n is not None for n in numbers) and len(set(numbers)) == len(numbers)
    if own and listed:
        values = [n for n in numbers if n is not None]
        own = min(values) >= 0 and max(values) <= 2 * len(values) + 10
    if own and listed:
        shift = 1 if min(n for n in numbers if n is not None) == 0 else 0
        pairs = sorted(((d.number or 0) + shift, d.text) for d in listed)
    else:
        pairs = [(position, d.text) for position, d in enumerate(listed, start=1)]
    kept = [(n, text.strip()) for n, text in pairs if text and text.strip()]
    return [text for _, text in kept], [n for n, _ in kept]
