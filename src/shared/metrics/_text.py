"""Text helpers shared by the heuristic metrics: sentences, content tokens, citations.

All regexes are compiled once at import and every helper is linear in the text length: an
ordinary answer costs microseconds, a 1 MB one well under a second.
"""

from __future__ import annotations

import re
from typing import Literal

TextField = Literal["actual_output", "query", "expected_output"]

# Zero-width and BOM characters: invisible, so an answer made only of them is empty, and an
# injection phrase split by them is still the phrase.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")
_WS_RE = re.compile(r"\s+")
# One translate pass: drop invisible characters, straighten curly quotes.
_MATCHING_TABLE = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201b": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'}
    | dict.fromkeys(_INVISIBLE, None)
)


def strip_invisible(text: str) -> str:
    """Remove zero-width characters and the BOM."""
    return _INVISIBLE_RE.sub("", text)


def normalize_for_matching(text: str) -> str:
    """Casefold, straighten curly quotes, drop invisible characters, collapse whitespace.

    Used by phrase detectors (refusal, injection markers) so that "I’m  sorry" and "i'm sorry"
    match the same pattern.
    """
    return " ".join(text.translate(_MATCHING_TABLE).split()).casefold()


def collapse_whitespace(text: str) -> str:
    return _WS_RE.sub(" ", text).strip()


# --- sentences ---------------------------------------------------------------------------------

_LINE_RE = re.compile(r"\n\s*")
_LIST_MARKER_RE = re.compile(r"^\s*(?:[-*\u2022>]+|#{1,6}|\(?\d{1,3}[.)])\s+")
_SENTENCE_BREAK_RE = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+")
_LEADING_BRACKETS_RE = re.compile(r"^(?:\s*\[[^\[\]\n]{1,64}\])+[.,;:]?")
_ABBREVIATION_RE = re.compile(r"(?:^|\s)(?:e\.g|i\.e|etc|vs|mr|mrs|ms|dr|prof|no|approx|inc|ltd|co|st|fig)\.$", re.I)


def split_sentences(text: str) -> list[str]:
    """Split an answer into sentences, keeping citations with the sentence they follow.

    Lines are split first (bullets and headings are sentences of their own, list markers
    removed), then at `.`, `!` or `?` followed by whitespace, except after a few common
    abbreviations. A citation written after the full stop ("... approved. [2] Next ...")
    belongs to the sentence before it. Heuristic, language-agnostic, linear time.
    """
    sentences: list[str] = []
    for raw_line in _LINE_RE.split(text):
        line = _LIST_MARKER_RE.sub("", raw_line, count=1).strip()
        if not line:
            continue
        parts = _SENTENCE_BREAK_RE.split(line)
        merged: list[str] = []
        for part in parts:
            if merged:
                lead = _LEADING_BRACKETS_RE.match(part) if part.startswith("[") else None
                if lead:
                    merged[-1] = f"{merged[-1]} {lead.group().strip()}"
                    part = part[lead.end() :].strip()
                prev = merged[-1]
                # Cheap guard first: an abbreviation is a short last word ending in "."
                if (
                    part
                    and prev.endswith(".")
                    and len(prev) - prev.rfind(" ") <= 9
                    and _ABBREVIATION_RE.search(prev, max(0, len(prev) - 9))
                ):
                    merged[-1] = f"{prev} {part}"
                    continue
            if part:
                merged.append(part)
        sentences.extend(merged)
    return sentences


# --- content tokens ----------------------------------------------------------------------------

# Numbers keep their separators ("5,000,000", "12.5") so "$900,000" does not match on "000".
_WORD_RE = re.compile(r"\d+(?:[.,]\d+)+|\w+")
_BRACKET_RE = re.compile(r"\[[^\[\]\n]{0,64}\]")

STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves may might must shall per via upon
    based according given therefore thus however hence since whether within without across s t
    """.split()  # noqa: SIM905 - a word list reads better as prose
)


def _stem(token: str) -> str:
    """A deliberately tiny stemmer: plural 's' only, so 'premiums' supports 'premium'."""
    if len(token) > 3 and token.endswith("s") and not token.endswith("ss") and not token.isdigit():
        return token[:-1]
    return token


def content_tokens(text: str) -> set[str]:
    """Casefolded word tokens minus stopwords, bracketed citations and 1-letter tokens."""
    if "[" in text:
        text = _BRACKET_RE.sub(" ", text)
    text = text.casefold()
    return {
        _stem(tok)
        for tok in _WORD_RE.findall(text)
        if tok not in STOPWORDS and (len(tok) > 1 or tok.isdigit()) and tok != "_"
    }


def word_count(text: str) -> int:
    return len(text.split())


# --- citations ---------------------------------------------------------------------------------

# [1], [1, 2], [1-3], [2;4]
INDEX_CITATION = r"\[(\d{1,6}(?:\s*[,;\-\u2013]\s*\d{1,6})*)\]"
# [doc-12], [KB_3, policy.v2]: ids start with a letter and contain a digit (so [Note] is prose).
_DOC_ID = r"[A-Za-z][\w.:/#-]*\d[\w.:/#-]*"
DOC_ID_CITATION = rf"\[({_DOC_ID}(?:\s*[,;]\s*{_DOC_ID})*)\]"
ANY_CITATION = rf"{INDEX_CITATION}|{DOC_ID_CITATION}"

_ID_SPLIT_RE = re.compile(r"\s*[,;]\s*")
_RANGE_RE = re.compile(r"^(\d+)\s*[-\u2013]\s*(\d+)$")
MAX_RANGE = 100  # [1-100000] is not 100000 citations: wider ranges count as their two ends


def citation_groups(pattern: re.Pattern[str], text: str) -> list[str]:
    """The id text of each citation: group 1, the first non-empty group, or the whole match."""
    found: list[str] = []
    for match in pattern.finditer(text):
        groups = [g for g in match.groups() if g]
        found.append(groups[0] if groups else match.group())
    return found


def split_ids(raw: str, *, expand_ranges: bool) -> list[str]:
    """'1, 3-5' -> ['1', '3', '4', '5'] (ranges only when `expand_ranges`)."""
    ids: list[str] = []
    for part in _ID_SPLIT_RE.split(raw.strip()):
        if not part:
            continue
        ranged = _RANGE_RE.match(part) if expand_ranges else None
        if ranged:
            lo, hi = int(ranged.group(1)), int(ranged.group(2))
            if lo <= hi and hi - lo <= MAX_RANGE:
                ids.extend(str(n) for n in range(lo, hi + 1))
            else:
                ids.extend([str(lo), str(hi)])
        else:
            ids.append(part)
    return ids


def clip(text: str, limit: int = 120) -> str:
    """Shorten text for signals and explanations (never dump a 1 MB string into a result row)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
