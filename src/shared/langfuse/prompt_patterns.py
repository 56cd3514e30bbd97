"""Prompt patterns: pull the variables back out of a rendered prompt.

Traces record the *rendered* prompt of each LLM call, not the variables that went into it. To
evaluate "was the answer grounded in the context it was given?" we need those variables again, so
each implementation declares, per workflow step, which sections of the prompt hold which variable.

A prompt usually has header lines (`CASE ASSESSMENT:`, `## CONTEXT DATA`) followed by a body that
runs until the next header. `create_extraction_pattern` builds the regex for one such section;
`PromptPatternsBase` maps step names to named patterns and is what `Step.variables`
(shared.traces) calls:

    class MyPatterns(PromptPatternsBase):
        patterns = {"recommendation": section_patterns(["CASE ASSESSMENT", "CONTEXT DATA"])}

    MyPatterns().extract("recommendation", prompt) -> {"case_assessment": "...", "context_data": "..."}

Every pattern is anchored at line starts and scans linearly, so a 1 MB prompt costs milliseconds and
a prompt without the section simply yields no entry (never an exception).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from shared.traces import normalise_key

_HEADER_PREFIX = r"^[ \t]*(?:#{1,6}[ \t]*|\*\*)?"  # plain, markdown `## `, or bold `**`
# A header ends with a colon (`FLAGS:`, `**FLAGS:**`, `**FLAGS**:`) or stands alone on its line, so
# a sentence that merely starts with the same words ("Context data shows ...") is not a header.
_HEADER_SUFFIX = r"(?:\*\*)?[ \t]*(?::(?:\*\*)?|(?=\r?\n|\Z))[ \t]*"


def _header(name: str) -> str:
    """The regex of a header line start: the name, loose about spaces, optional colon/markdown."""
    words = [re.escape(w) for w in name.strip().rstrip(":").split()]
    return _HEADER_PREFIX + r"[ \t]+".join(words) + _HEADER_SUFFIX


def create_extraction_pattern(
    header: str,
    next_headers: Iterable[str] = (),
    *,
    stop_at_blank_line: bool = False,
    case_sensitive: bool = False,
) -> re.Pattern[str]:
    """A regex whose group `value` is the body of the section starting at a `header` line.

    The body starts after the header (on the same line, e.g. `FLAGS: none`, or on the next lines)
    and ends at the first line that starts with one of `next_headers`, at a blank line when
    `stop_at_blank_line`, or at the end of the text. With no `next_headers` the section runs to the
    end (or the first blank line).
    """
    stops = [_header(h) for h in next_headers if h.strip()]
    terminators: list[str] = []
    if stops:
        terminators.append("(?:" + "|".join(stops) + ")")
    if stop_at_blank_line:
        terminators.append(r"^[ \t]*$")
    flags = re.MULTILINE | re.DOTALL | (0 if case_sensitive else re.IGNORECASE)
    if not terminators:
        return re.compile(_header(header) + r"\n?(?P<value>.*)", flags)  # to the end of the text
    # Every terminator is anchored at `^`, so the body can only end at a line start or at the end
    # of the text: the body is taken lazily line by line (`[^\n]*\n` is one fast step per line)
    # rather than character by character, which halves the cost on long prompts. It is the same
    # match as `(?P<value>.*?)(?=terminators|\Z)`: linear in the text length.
    stop = "(?=" + "|".join(terminators) + ")"
    return re.compile(_header(header) + r"\n?(?P<value>(?:[^\n]*\n)*?(?:" + stop + r"|[^\n]*\Z))", flags)


def variable_name(header: str) -> str:
    """`CASE ASSESSMENT` -> `case_assessment` (the variable name of a section)."""
    return re.sub(r"[^a-z0-9]+", "_", header.strip().rstrip(":").lower()).strip("_")


def section_patterns(headers: Sequence[str], **options: bool) -> dict[str, re.Pattern[str]]:
    """One pattern per header, each section ending at any of the other headers.

    Returns `{variable_name(header): pattern}` for use as one step's entry in
    `PromptPatternsBase.patterns`.
    """
    return {variable_name(h): create_extraction_pattern(h, [o for o in headers if o != h], **options) for h in headers}


class PromptPatternsBase:
    """Maps step names to named extraction patterns; subclass and fill `patterns`.

    `patterns` is `{step name: {variable name: compiled regex}}`. A regex's value is its group
    `value` if it has one, else its first group, else the whole match; values are stripped and
    empty values are left out. Step names match tolerantly (case, `-`/`_`), so `recommendation`
    also serves a step logged as `Recommendation` or `recommendation-step`.
    """

    patterns: ClassVar[Mapping[str, Mapping[str, re.Pattern[str]]]] = {}

    def patterns_for(self, step_name: str) -> Mapping[str, re.Pattern[str]]:
        if step_name in self.patterns:
            return self.patterns[step_name]
        wanted = normalise_key(step_name)
        for name, found in self.patterns.items():
            if normalise_key(name) == wanted:
                return found
        for name, found in self.patterns.items():
            if wanted.startswith(normalise_key(name)):
                return found
        return {}

    def extract(self, step_name: str, text: str | None) -> dict[str, str]:
        """The variables found in `text` (a rendered prompt) for the step `step_name`."""
        if not text:
            return {}
        found: dict[str, str] = {}
        for name, pattern in self.patterns_for(step_name).items():
            match = pattern.search(text)
            if match is None:
                continue
            value = _match_value(match)
            if value:
                found[name] = value
        return found

    def steps(self) -> list[str]:
        return list(self.patterns)


def _match_value(match: re.Match[str]) -> str:
    if "value" in match.re.groupindex:
        raw = match.group("value")
    elif match.re.groups:
        raw = match.group(1)
    else:
        raw = match.group(0)
    return (raw or "").strip()
