"""The sections of athena's prompts, and a parser of the numbered context items.

The `recommendation` GENERATION's prompt (the user message) reads:

    CASE ASSESSMENT:
    <the case as the underwriter described it>

    CONTEXT DATA:
    [1] (UW-RULE-0042) Frame construction within 1 mile of the coast needs ...
    [2] (HAZ-FL-AE) Flood zone AE ...

    UNDERWRITING FLAGS:
    - prior_claims: 3 in 5 years
    - sprinklers: none

    Respond with JSON ...

The rationale cites context items as `[n]` (1-based, in the order of CONTEXT DATA), so the order
in which `parse_context_items` returns items is what citation metrics check against.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from shared.langfuse.prompt_patterns import PromptPatternsBase, create_extraction_pattern, section_patterns

RECOMMENDATION_HEADERS = ("CASE ASSESSMENT", "CONTEXT DATA", "UNDERWRITING FLAGS")
# The instruction paragraph after the flags is not a variable; it ends the flags section.
_INSTRUCTIONS = "Respond with JSON"


class AthenaPromptPatterns(PromptPatternsBase):
    """Step `recommendation` -> case_assessment, context_data, underwriting_flags;
    step `location-extraction` -> case_text."""

    patterns: ClassVar[Mapping[str, Mapping[str, re.Pattern[str]]]] = {
        "recommendation": {
            **section_patterns(RECOMMENDATION_HEADERS),
            "underwriting_flags": create_extraction_pattern(
                "UNDERWRITING FLAGS", ["CASE ASSESSMENT", "CONTEXT DATA", _INSTRUCTIONS]
            ),
        },
        "location-extraction": {"case_text": create_extraction_pattern("CASE", ["Return JSON"])},
    }


PATTERNS = AthenaPromptPatterns()


@dataclass(frozen=True)
class ContextItem:
    """One numbered item of CONTEXT DATA: `[number] (id) text`."""

    number: int
    id: str | None
    text: str

    def as_text(self) -> str:
        """The item as a retrieved-content string (keeps the id so id citations resolve)."""
        return f"({self.id}) {self.text}" if self.id else self.text


_ITEM_START = re.compile(r"^[ \t]*\[(\d{1,4})\][ \t]*", re.MULTILINE)
_ITEM_ID = re.compile(
    r"^\(([A-Za-z0-9][\w.:/-]{0,63})\)[ \t]*|^id[=:][ \t]*([A-Za-z0-9][\w.:/-]{0,63})[ \t]*[|,;]?[ \t]*"
)


def parse_context_items(context_data: str | None) -> list[ContextItem]:
    """The numbered items of a CONTEXT DATA section, in order; a multi-line item stays whole.

    Text before the first `[n]` marker is ignored; an item without an id keeps `id=None`.
    """
    if not context_data:
        return []
    starts = list(_ITEM_START.finditer(context_data))
    items: list[ContextItem] = []
    for index, start in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(context_data)
        body = context_data[start.end() : end].strip()
        item_id = None
        id_match = _ITEM_ID.match(body)
        if id_match:
            item_id = id_match.group(1) or id_match.group(2)
            body = body[id_match.end() :].strip()
        items.append(ContextItem(number=int(start.group(1)), id=item_id, text=body))
    return items


def parse_flags(flags: str | None) -> list[str]:
    """UNDERWRITING FLAGS as a list: one flag per bullet line (`- `, `* `, `• `); `none` -> []."""
    if not flags:
        return []
    found = [re.sub(r"^[ \t]*(?:[-*•]|\d+[.)])[ \t]*", "", line).strip() for line in flags.splitlines()]
    return [f for f in found if f and f.lower() not in ("none", "n/a", "-")]
