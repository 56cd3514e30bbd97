"""athena's heuristic metrics (registered by importing this module: `plugins: [implementations.athena.metrics]`).

They read what `extract_recommendation` puts on the item:

- athena_decision_present      the answer carries a decision among approve / decline / refer
- athena_citation_accuracy     every citation in the rationale points into CONTEXT DATA, and there is one
- athena_refer_reason_given    a `refer` decision says why (skipped for other decisions)
- athena_output_schema         the raw answer was a JSON object with the fields the workbench reads

All are cheap and deterministic; each result's `signals` say exactly what was found.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricParams, MetricResult, metric

DECISIONS = ("approve", "decline", "refer")

# `[3]`, `[1, 2]`, `[2-4]`, `[UW-RULE-0042]`: a bracket group of numbers or of ids with a digit.
_CITATION = re.compile(r"\[([^\[\]\n]{1,80})\]")
_NUMBER_LIST = re.compile(r"^\s*\d{1,6}(?:\s*(?:[,;]|-|–)\s*\d{1,6})*\s*$")
_ID_LIKE = re.compile(r"^[A-Za-z][\w.:/-]*\d[\w.:/-]*$")
_MAX_LISTED = 20


def _decision(item: DatasetItem) -> str | None:
    value = item.additional_output.get("decision")
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


@metric(
    key="athena_decision_present",
    description="1 when the recommendation carries a decision among approve, decline, refer; else 0.",
    required_fields=(),
    default_threshold=1.0,
    score_type="boolean",
)
class DecisionPresent(BaseMetric):
    """1.0 when `additional_output.decision` is one of `params.allowed` (case-insensitive), else 0.0.

    No required fields on purpose: an empty or unparseable answer has no decision, and that is
    what this metric must report (other metrics skip such items).
    """

    class Params(MetricParams):
        allowed: tuple[str, ...] = Field(default=DECISIONS, min_length=1)

    params: Params

    async def execute(self, item: DatasetItem) -> MetricResult:
        allowed = {a.lower() for a in self.params.allowed}
        decision = _decision(item)
        fmt = item.additional_output.get("output_format")
        signals: dict[str, Any] = {"decision": decision, "output_format": fmt}
        if decision is None:
            why = "no decision" + (f" (output {fmt})" if fmt and fmt != "json" else "")
            return self.result(0.0, why, signals=signals)
        if decision not in allowed:
            return self.result(0.0, f"decision {decision[:40]!r} is not one of {sorted(allowed)}", signals=signals)
        return self.result(1.0, f"decision: {decision}", signals=signals)


def find_citations(text: str) -> tuple[list[int], list[str]]:
    """Numeric citations (`[2]`, `[1, 3]`, `[2-4]` expanded) and id citations (`[UW-RULE-0042]`).

    Bracket groups that are neither (`[sic]`, `[see above]`) are ignored; ranges wider than 50
    are taken as their two ends, so a hostile `[1-999999]` cannot blow up.
    """
    numbers: list[int] = []
    ids: list[str] = []
    for match in _CITATION.finditer(text):
        body = match.group(1).strip()
        if _NUMBER_LIST.match(body):
            for part in re.split(r"\s*[,;]\s*", body):
                bounds = [int(x) for x in re.split(r"\s*[-–]\s*", part) if x]
                if len(bounds) == 2 and 0 <= bounds[1] - bounds[0] <= 50:
                    numbers.extend(range(bounds[0], bounds[1] + 1))
                else:
                    numbers.extend(bounds)
            continue
        for part in re.split(r"\s*[,;]\s*", body):
            if _ID_LIKE.match(part):
                ids.append(part)
    return numbers, ids


@metric(
    key="athena_citation_accuracy",
    description="Share of the rationale's citations ([n] or [rule id]) that point into the prompt's CONTEXT DATA.",
    required_fields=("actual_output",),
    default_threshold=1.0,
)
class CitationAccuracy(BaseMetric):
    """Score = resolving / total distinct citations in `actual_output`, in [0, 1].

    `[n]` resolves when 1 <= n <= len(retrieved_content) (the numbered CONTEXT DATA items);
    `[UW-RULE-0042]` resolves when that id is in `additional_input.retrieved_ids`. A rationale
    without any citation scores 0.0 when `params.require_citations` (default: athena's prompt
    demands them), else it is skipped. A missing context means every citation dangles.
    Passes at >= threshold (default 1.0).
    """

    class Params(MetricParams):
        require_citations: bool = True

    params: Params

    async def execute(self, item: DatasetItem) -> MetricResult:
        numbers, ids = find_citations(item.actual_output or "")
        n_items = len(item.retrieved_content or [])
        known_ids = {str(i).casefold() for i in item.additional_input.get("retrieved_ids") or [] if i}
        cited_numbers = sorted(set(numbers))
        cited_ids = sorted({i.casefold(): i for i in ids}.values(), key=str.casefold)
        total = len(cited_numbers) + len(cited_ids)
        if total == 0:
            if not self.params.require_citations:
                return MetricResult.skipped("no citations in the rationale")
            return self.result(0.0, "the rationale cites no context item", signals={"cited": 0, "n_items": n_items})
        bad = [f"[{n}]" for n in cited_numbers if not 1 <= n <= n_items]
        bad += [f"[{i}]" for i in cited_ids if i.casefold() not in known_ids]
        good = total - len(bad)
        signals = {"cited": total, "valid": good, "invalid": bad[:_MAX_LISTED], "n_items": n_items}
        why = f"{good}/{total} citations point into the {n_items} context item(s)"
        if bad:
            why += f"; dangling: {', '.join(bad[:5])}"
        return self.result(good / total, why, signals=signals)


@metric(
    key="athena_refer_reason_given",
    description="For refer decisions: 1 when refer_reason explains the referral; skipped for other decisions.",
    required_fields=(),
    default_threshold=1.0,
    score_type="boolean",
)
class ReferReasonGiven(BaseMetric):
    """1.0 when a `refer` decision has a `refer_reason` of at least `params.min_chars` visible
    characters, else 0.0; other decisions (and no decision) are skipped: the rule only binds
    referrals, and athena_decision_present already reports a missing decision."""

    class Params(MetricParams):
        min_chars: int = Field(default=10, ge=1)

    params: Params

    async def execute(self, item: DatasetItem) -> MetricResult:
        decision = _decision(item)
        if decision != "refer":
            return MetricResult.skipped(f"decision is {decision or 'missing'}, not refer")
        reason = item.additional_output.get("refer_reason")
        text = reason.strip() if isinstance(reason, str) else ""
        signals = {"chars": len(text)}
        if len(text) < self.params.min_chars:
            why = "refer without a reason" if not text else f"refer reason too short ({len(text)} chars)"
            return self.result(0.0, why, signals=signals)
        return self.result(1.0, f"refer reason given ({len(text)} chars)", signals=signals)


@metric(
    key="athena_output_schema",
    description="1 when the recommendation output was a JSON object with decision and rationale strings; else 0.",
    required_fields=(),
    default_threshold=1.0,
    score_type="boolean",
)
class OutputSchema(BaseMetric):
    """1.0 when the model's answer parsed as a JSON object whose `params.required_keys` are
    non-empty strings, else 0.0 (empty, truncated or non-JSON output, missing keys). The workbench
    renders only such answers, so anything else is a failed recommendation for the underwriter."""

    class Params(MetricParams):
        required_keys: tuple[str, ...] = ("decision", "rationale")

    params: Params

    async def execute(self, item: DatasetItem) -> MetricResult:
        fmt = item.additional_output.get("output_format")
        parsed = item.additional_output.get("parsed_output")
        if fmt != "json" or not isinstance(parsed, dict):
            return self.result(0.0, f"output is {fmt or 'missing'}, not a JSON object", signals={"format": fmt})
        missing = [
            k for k in self.params.required_keys if not (isinstance(parsed.get(k), str) and parsed.get(k, "").strip())
        ]
        if missing:
            return self.result(
                0.0, f"missing or empty: {', '.join(missing)}", signals={"format": fmt, "missing": missing}
            )
        return self.result(1.0, "JSON object with all required keys", signals={"format": fmt})
