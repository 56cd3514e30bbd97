"""grounding_overlap: lexical support of each answer sentence by the retrieved content."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricParams, MetricResult, metric
from shared.metrics._text import clip, content_tokens, split_sentences


@metric(
    key="grounding_overlap",
    description="Share of answer sentences whose content words mostly appear in the retrieved content.",
    required_fields=("actual_output", "retrieved_content"),
    default_threshold=0.7,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="numeric",
    direction="higher_is_better",
)
class GroundingOverlap(BaseMetric):
    """Score = supported sentences / eligible sentences of `actual_output`, in [0, 1].

    Each sentence is reduced to content tokens (casefolded words and numbers, English stopwords,
    1-letter words and bracketed citations removed, a plural 's' stripped). Its overlap is the
    share of those tokens present in the retrieved content: all documents together
    (`scope: all`, default) or the single best document (`scope: best_document`, stricter).
    A sentence is supported when overlap >= `params.min_overlap` (default 0.5). Sentences with
    fewer than `params.min_tokens` content tokens are not eligible; an answer with none is
    recorded as skipped. Lexical, so paraphrases score low and copied-but-wrong facts score
    high: a cheap hallucination alarm, not a judge. Passes at >= threshold (default 0.7).
    """

    class Params(MetricParams):
        min_overlap: float = Field(default=0.5, gt=0.0, le=1.0)
        min_tokens: int = Field(default=2, ge=1)
        scope: Literal["all", "best_document"] = "all"

    params: Params

    async def execute(self, item: DatasetItem) -> MetricResult:
        p = self.params
        docs = [content_tokens(doc) for doc in item.retrieved_content or [] if doc]
        union: set[str] = set().union(*docs) if docs else set()
        eligible = 0
        supported = 0
        overlaps: list[float] = []
        unsupported: list[str] = []
        for sentence in split_sentences(item.actual_output or ""):
            tokens = content_tokens(sentence)
            if len(tokens) < p.min_tokens:
                continue
            eligible += 1
            if p.scope == "all":
                overlap = len(tokens & union) / len(tokens)
            else:
                overlap = max((len(tokens & doc) for doc in docs), default=0) / len(tokens)
            overlaps.append(overlap)
            if overlap >= p.min_overlap:
                supported += 1
            elif len(unsupported) < 3:
                unsupported.append(clip(sentence))
        if not eligible:
            return MetricResult.skipped(f"no sentence with >= {p.min_tokens} content words")
        return self.result(
            supported / eligible,
            f"{supported}/{eligible} sentences supported (token overlap >= {p.min_overlap:g})",
            signals={
                "sentences": eligible,
                "supported": supported,
                "mean_overlap": round(sum(overlaps) / len(overlaps), 4),
                "unsupported_examples": unsupported,
            },
        )
