"""Citation heuristics: citation_validity (do citations point at retrieved documents) and
citation_coverage (how much of the answer is cited)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from shared.errors import MetricError
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricParams, MetricResult, metric
from shared.metrics._text import (
    ANY_CITATION,
    citation_groups,
    clip,
    split_ids,
    split_sentences,
    strip_invisible,
)
from shared.patterns import Regex, compile_pattern

_BRACKETS_RE = re.compile(r"\[[^\[\]\n]{0,64}\]")
_MAX_LISTED = 20


@metric(
    key="citation_validity",
    description="Share of distinct cited ids in actual_output that refer to a retrieved document.",
    required_fields=(),
    default_threshold=1.0,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="numeric",
    direction="higher_is_better",
)
class CitationValidity(BaseMetric):
    """Score = valid / total over the distinct ids cited in `actual_output`, in [0, 1].

    A citation is a match of `params.pattern` (default: `[3]`, `[1, 2]`, `[2-4]`, or an id-like
    `[doc-12]` / `[UW-RULE-0917]` that contains a digit); its first non-empty group (or the whole
    match) holds one or more ids separated by `,` or `;`. With `id_mode: index` (default) ids
    are positions in `retrieved_content`, 1-based unless `index_base: 0` (or, when the extractor kept
    the documents' own numbers in `additional_input["retrieved_numbers"]`, those numbers), and `[2-4]` ranges
    expand; an id is valid when it is an integer naming an existing document, so an id-like
    citation such as `[UW-RULE-0917]` in an index-cited answer is invalid. With `id_mode: doc_id` ids are compared
    (case-insensitively unless `case_sensitive_ids`) with the document ids found in
    `additional_input[doc_ids_key]` (else `metadata[doc_ids_key]`), or extracted from each
    `retrieved_content` entry with `doc_id_pattern`. A missing `retrieved_content` means no
    documents, so every citation dangles (score 0): that is the defect this metric exists for.

    `when_no_citations` is the verdict on an answer that cites nothing, so the metric has no
    citation to check: `pass` (default) scores 1.0 (nothing cited, nothing dangling: it
    answers "are the citations that exist valid?"; pair it with citation_coverage to catch
    uncited answers), `fail` scores 0.0 (for apps that must always cite: "does the answer
    cite a real document?"), `skip` records the item as skipped (it then counts in neither
    the pass rate nor alerts). An empty answer (missing, blank or whitespace-only) cites
    nothing and gets the same verdict, with `signals.empty` true: it is scored, not skipped,
    so a pass rate never leaves out the empty answers. Passes at >= threshold (default 1.0:
    every citation must be valid).
    """

    class Params(MetricParams):
        id_mode: Literal["index", "doc_id"] = "index"
        index_base: int = Field(default=1, ge=0, le=1)
        pattern: Regex | None = Field(default=None, description="citation regex; default depends on id_mode")
        doc_ids_key: str = "retrieved_ids"
        doc_id_pattern: Regex | None = Field(default=None, description="regex whose group 1 is a document's id")
        case_sensitive_ids: bool = False
        when_no_citations: Literal["pass", "fail", "skip"] = "pass"

    params: Params

    def prepare(self) -> None:
        p = self.params
        self._citation_re = compile_pattern(p.pattern or ANY_CITATION)
        self._doc_id_re = compile_pattern(p.doc_id_pattern, flags=re.M) if p.doc_id_pattern else None

    def _norm(self, doc_id: str) -> str:
        doc_id = doc_id.strip()
        return doc_id if self.params.case_sensitive_ids else doc_id.casefold()

    def _known_ids(self, item: DatasetItem) -> set[str]:
        key = self.params.doc_ids_key
        listed = item.additional_input.get(key, item.metadata.get(key))
        if isinstance(listed, list | tuple):
            return {self._norm(str(x)) for x in listed if x is not None}
        docs = item.retrieved_content or []
        if self._doc_id_re is not None:
            ids: set[str] = set()
            for doc in docs:
                found = self._doc_id_re.search(doc)
                if found:
                    ids.add(self._norm(next((g for g in found.groups() if g), found.group())))
            return ids
        if docs:
            raise MetricError(
                f"id_mode doc_id needs document ids in additional_input['{key}'] or params.doc_id_pattern"
            )
        return set()

    async def execute(self, item: DatasetItem) -> MetricResult:
        p = self.params
        answer = item.actual_output or ""
        cited: dict[str, str] = {}  # normalised id -> id as written, in order of first citation
        for raw in citation_groups(self._citation_re, answer):
            for doc_id in split_ids(raw, expand_ranges=p.id_mode == "index"):
                cited.setdefault(self._norm(doc_id), doc_id.strip())
        n_docs = len(item.retrieved_content or [])
        if not cited:
            empty = not strip_invisible(answer).strip()
            what = "empty answer, no citations" if empty else "no citations"
            if p.when_no_citations == "skip":
                return MetricResult.skipped(f"{what} (when_no_citations: skip)")
            score = 1.0 if p.when_no_citations == "pass" else 0.0
            none_cited = {"cited": 0, "invalid": [], "n_docs": n_docs, "empty": empty}
            return self.result(score, f"{what} (when_no_citations: {p.when_no_citations})", signals=none_cited)
        if p.id_mode == "index":
            lo, hi = p.index_base, n_docs + p.index_base
            numbers = own_numbers(item, n_docs)
            invalid = [
                c
                for c in cited
                if not (
                    c.isascii()
                    and c.isdigit()
                    and len(c) <= 9
                    and (int(c) in numbers if numbers is not None else lo <= int(c) < hi)
                )
            ]
        else:
            known = self._known_ids(item)
            invalid = [c for c in cited if c not in known]
        valid = len(cited) - len(invalid)
        signals: dict[str, Any] = {
            "cited": len(cited),
            "valid": valid,
            "invalid": [clip(cited[c], 40) for c in invalid[:_MAX_LISTED]],
            "n_docs": n_docs,
        }
        why = f"{valid}/{len(cited)} cited ids refer to retrieved documents ({n_docs} retrieved)"
        if invalid:
            why += f"; dangling: {', '.join(clip(cited[c], 40) for c in invalid[:5])}"
        return self.result(valid / len(cited), why, signals=signals)


def own_numbers(item: DatasetItem, n_docs: int) -> set[int] | None:
    """The numbers the app showed its documents under (`[2]`, `[5]`), kept by the extractor in
    `additional_input["retrieved_numbers"]` when they are not simply 1..n; None: positions count."""
    numbers = item.additional_input.get("retrieved_numbers")
    if isinstance(numbers, list) and len(numbers) == n_docs and all(type(n) is int for n in numbers):
        return set(numbers)
    return None


@metric(
    key="citation_coverage",
    description="Share of answer sentences (of >= min_words words) that carry a citation.",
    required_fields=("actual_output",),
    default_threshold=0.8,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="numeric",
    direction="higher_is_better",
)
class CitationCoverage(BaseMetric):
    """Score = cited sentences / eligible sentences of `actual_output`, in [0, 1].

    Sentences come from a heuristic splitter (lines, then `.!?` + whitespace; a citation written
    just after the full stop belongs to the sentence before it). Sentences with fewer than
    `params.min_words` words (citations not counted) are not eligible: headings such as
    "Decision: refer" need no source. A sentence is cited when `params.pattern` (default:
    `[n]`, `[n, m]`, `[n-m]` or id-like `[doc-12]`) occurs in it. An answer with no eligible
    sentence (an empty answer included) is recorded as skipped: a share of no sentences has no
    value (non_empty / length_constraint / citation_validity with `when_no_citations: fail`
    judge that case). Passes at >= threshold (default 0.8).
    """

    class Params(MetricParams):
        pattern: Regex | None = None
        min_words: int = Field(default=3, ge=1)

    params: Params

    def prepare(self) -> None:
        self._citation_re = compile_pattern(self.params.pattern or ANY_CITATION)

    async def execute(self, item: DatasetItem) -> MetricResult:
        eligible = [
            s
            for s in split_sentences(item.actual_output or "")
            if len(_BRACKETS_RE.sub(" ", s).split()) >= self.params.min_words
        ]
        if not eligible:
            return MetricResult.skipped(f"no sentence of >= {self.params.min_words} words")
        uncited = [s for s in eligible if self._citation_re.search(s) is None]
        cited = len(eligible) - len(uncited)
        return self.result(
            cited / len(eligible),
            f"{cited}/{len(eligible)} sentences carry a citation",
            signals={
                "sentences": len(eligible),
                "cited": cited,
                "uncited_examples": [clip(s) for s in uncited[:3]],
            },
        )
