"""Reference-based heuristics: exact_match and levenshtein_ratio against `expected_output`."""

from __future__ import annotations

import unicodedata

from pydantic import Field

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricParams, MetricResult, metric
from shared.metrics._text import collapse_whitespace


def _strip_punctuation(text: str) -> str:
    """Drop Unicode punctuation (category P*), keeping letters, digits, symbols and spaces."""
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))


class NormalizeParams(MetricParams):
    """How both texts are normalised before comparing (the same steps for each)."""

    case_sensitive: bool = True
    normalize_whitespace: bool = Field(default=True, description="strip and collapse runs of whitespace")
    unicode_nfkc: bool = Field(default=True, description="NFKC-normalise (full-width, ligatures, composed accents)")
    ignore_punctuation: bool = False

    def apply(self, text: str) -> str:
        if self.unicode_nfkc:
            text = unicodedata.normalize("NFKC", text)
        if self.ignore_punctuation:
            text = _strip_punctuation(text)
        if self.normalize_whitespace:
            text = collapse_whitespace(text)
        if not self.case_sensitive:
            text = text.casefold()
        return text


@metric(
    key="exact_match",
    description="1.0 when actual_output equals expected_output after normalisation, else 0.0.",
    required_fields=("expected_output",),
    default_threshold=1.0,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="boolean",
    direction="higher_is_better",
)
class ExactMatch(BaseMetric):
    """Score 1.0 when the normalised `actual_output` equals the normalised `expected_output`.

    Normalisation (both sides): NFKC, then optionally punctuation removal, whitespace
    stripped and collapsed, optionally casefolded (defaults: case-sensitive, whitespace
    normalised, NFKC on, punctuation kept). Passes at 1.0. An empty or missing answer is
    compared as "" (so it fails against a non-empty reference); an item without
    `expected_output` is skipped.
    """

    class Params(NormalizeParams):
        pass

    params: Params

    async def execute(self, item: DatasetItem) -> MetricResult:
        actual = self.params.apply(item.actual_output or "")
        expected = self.params.apply(item.expected_output or "")
        same = actual == expected
        return self.result(
            1.0 if same else 0.0,
            "outputs match" if same else "outputs differ",
            signals={"actual_len": len(actual), "expected_len": len(expected)},
        )


def levenshtein_distance(a: str, b: str) -> int:
    """Unit-cost edit distance (insert, delete, substitute one code point).

    A compact dynamic programme in bit-parallel form (Myers 1999 / Hyyrö 2001): one DP column
    is held as bit vectors in Python ints, so each character of the longer string costs a few
    big-int operations instead of a loop over the shorter one. Identical results to the
    textbook two-row DP (the tests check them against each other). difflib is not used: its
    ratio is Ratcliff/Obershelp matching blocks, not an edit distance.
    """
    if a == b:
        return 0
    start = 0
    limit = min(len(a), len(b))
    while start < limit and a[start] == b[start]:
        start += 1
    end = 0
    while end < limit - start and a[-1 - end] == b[-1 - end]:
        end += 1
    a, b = a[start : len(a) - end], b[start : len(b) - end]
    if len(a) > len(b):
        a, b = b, a
    m = len(a)
    if m == 0:
        return len(b)
    peq: dict[str, int] = {}
    for i, ch in enumerate(a):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    full = (1 << m) - 1
    top = 1 << (m - 1)
    pv, mv, dist = full, 0, m
    for ch in b:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & full)
        mh = pv & xh
        if ph & top:
            dist += 1
        elif mh & top:
            dist -= 1
        ph = ((ph << 1) | 1) & full
        mh = (mh << 1) & full
        pv = mh | (~(xv | ph) & full)
        mv = ph & xv
    return dist


def levenshtein_ratio(a: str, b: str) -> float:
    """1 - distance / max(len): 1.0 for identical (also both empty), 0.0 for nothing in common."""
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein_distance(a, b) / longest


@metric(
    key="levenshtein_ratio",
    description="1 - edit distance / max length between actual_output and expected_output.",
    required_fields=("expected_output",),
    default_threshold=0.8,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="numeric",
    direction="higher_is_better",
)
class LevenshteinRatio(BaseMetric):
    """Score = 1 - levenshtein(actual, expected) / max(len(actual), len(expected)), in [0, 1].

    Unit-cost Levenshtein distance over Unicode code points, after the same normalisation as
    `exact_match` (default case-insensitive here). 1.0 means identical; passes at >= threshold
    (default 0.8). Texts longer than `params.max_chars` are compared on their first
    `max_chars` characters (`signals.truncated` is true) so a 1 MB answer costs milliseconds.
    An empty or missing answer is compared as "" (score 0.0 against a non-empty reference); an
    item without `expected_output` is skipped.
    """

    class Params(NormalizeParams):
        case_sensitive: bool = False
        max_chars: int = Field(default=10_000, gt=0, le=1_000_000)

    params: Params

    async def execute(self, item: DatasetItem) -> MetricResult:
        actual = self.params.apply(item.actual_output or "")
        expected = self.params.apply(item.expected_output or "")
        cap = self.params.max_chars
        truncated = len(actual) > cap or len(expected) > cap
        actual, expected = actual[:cap], expected[:cap]
        distance = levenshtein_distance(actual, expected)
        longest = max(len(actual), len(expected))
        ratio = 1.0 if longest == 0 else 1.0 - distance / longest
        return self.result(
            round(ratio, 6),
            f"edit distance {distance} over {longest} characters" + (" (truncated)" if truncated else ""),
            signals={"distance": distance, "max_len": longest, "truncated": truncated},
        )
