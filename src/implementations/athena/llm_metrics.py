"""athena's LLM-judge metrics (registered by importing this module: `plugins: [implementations.athena.llm_metrics]`).

They are the shared judges (`shared.metrics.judge`) with athena's rubrics and field mapping; the
rubric prompts live in Langfuse under the names below and fall back to prompts/*.txt beside this
module. They read what `extract_recommendation` puts on the item:

- athena_underwriting_faithfulness  share of the rationale's claims supported by CONTEXT DATA
                                    (composite: extract claims, check each; per-claim verdicts in signals)
- athena_decision_quality           the decision follows from UNDERWRITING FLAGS and CONTEXT DATA (1-5 -> 0..1)
- athena_refer_reason_quality       a `refer` decision's reason is specific and correct (skipped otherwise)

Every result names the judge model and the prompt name and version it was produced with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import CostEstimate, MetricResult, metric
from shared.metrics.judge import (
    FaithfulnessMetric,
    FaithfulnessParams,
    LLMJudgeMetric,
    LLMJudgeParams,
    Usage,
)

PROMPTS = Path(__file__).resolve().parent / "prompts"

CONTEXT_FIELDS = {"flags": "additional_input.underwriting_flags"}


class UnderwritingFaithfulnessParams(FaithfulnessParams):
    claims_prompt_name: str = "athena_underwriting_faithfulness_claims"
    verify_prompt_name: str = "athena_underwriting_faithfulness_verify"


@metric(
    key="athena_underwriting_faithfulness",
    description="Share of the recommendation's claims supported by CONTEXT DATA (LLM judge, per-claim verdicts).",
    required_fields=("actual_output", "retrieved_content"),
    default_threshold=0.8,
    kind="llm",
)
class UnderwritingFaithfulness(FaithfulnessMetric):
    Params = UnderwritingFaithfulnessParams
    default_fallback_files: ClassVar[dict[str, Path]] = {
        "claims": PROMPTS / "underwriting_faithfulness_claims.txt",
        "verify": PROMPTS / "underwriting_faithfulness_verify.txt",
    }


class DecisionQualityParams(LLMJudgeParams):
    prompt_name: str = "athena_decision_quality"
    variables: dict[str, str] = Field(
        default_factory=lambda: {**CONTEXT_FIELDS, "decision": "additional_output.decision"}
    )
    required: list[str] = Field(default_factory=lambda: ["additional_output.decision"])


@metric(
    key="athena_decision_quality",
    description="The decision (approve/decline/refer) follows from the underwriting flags and context (LLM judge, 0..1).",
    required_fields=("additional_output",),
    default_threshold=0.5,
    kind="llm",
)
class DecisionQuality(LLMJudgeMetric):
    Params = DecisionQualityParams
    default_fallback_files: ClassVar[dict[str, Path]] = {"rubric": PROMPTS / "decision_quality.txt"}


class ReferReasonQualityParams(LLMJudgeParams):
    prompt_name: str = "athena_refer_reason_quality"
    variables: dict[str, str] = Field(
        default_factory=lambda: {**CONTEXT_FIELDS, "refer_reason": "additional_output.refer_reason"}
    )
    required: list[str] = Field(default_factory=lambda: ["additional_output.decision"])


@metric(
    key="athena_refer_reason_quality",
    description="A refer decision's reason is specific, correct and actionable (LLM judge, 0..1; skipped otherwise).",
    required_fields=("additional_output",),
    default_threshold=0.5,
    kind="llm",
)
class ReferReasonQuality(LLMJudgeMetric):
    """Referrals only. A referral without any reason scores 0 without asking the judge."""

    Params = ReferReasonQualityParams
    default_fallback_files: ClassVar[dict[str, Path]] = {"rubric": PROMPTS / "refer_reason_quality.txt"}

    async def score(self, item: DatasetItem, usage: Usage) -> MetricResult:
        if _decision(item) != "refer":
            return MetricResult.skipped("not a refer decision")
        reason = item.additional_output.get("refer_reason")
        if not isinstance(reason, str) or not reason.strip():
            return self.result(0.0, "the referral gives no reason", signals={"judged": False})
        return await super().score(item, usage)

    def estimate(self, items: Sequence[DatasetItem]) -> CostEstimate:
        referrals = [i for i in items if _decision(i) == "refer" and _has_reason(i)]
        return super().estimate(referrals)


def _decision(item: DatasetItem) -> str | None:
    value = item.additional_output.get("decision")
    return value.strip().lower() if isinstance(value, str) else None


def _has_reason(item: DatasetItem) -> bool:
    reason = item.additional_output.get("refer_reason")
    return isinstance(reason, str) and bool(reason.strip())
