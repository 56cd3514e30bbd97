"""LLM-as-judge metrics: `llm_judge` (one rubric call) and `faithfulness` (a composite of sub-judges).

A judge metric renders a managed rubric prompt (Langfuse by name and label, or a local fallback
file) with the item's fields, asks an OpenAI-compatible model for a JSON object, parses it strictly
and normalises the score to 0..1. Everything that costs money or can fail goes through
`JudgeCaller` (judge_client.py): result cache, dry run, circuit breaker, run budget, rate limiter.

Outcomes, per item:
    ok        a score with provenance (model, prompt name and version), tokens and cost
    error     the judge failed after retries, or its answer did not parse (raw text in signals)
    deferred  not attempted: budget reached, circuit open, or dry run (a later run scores it)

Provenance (model, prompt name, prompt version, temperature) is part of the metric version, so a
new prompt version or a new judge model makes every item eligible again, for this metric only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from shared.errors import ConfigError
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import (
    BaseMetric,
    CostEstimate,
    MetricContext,
    MetricParams,
    MetricResult,
    MetricStatus,
    metric,
)
from shared.metrics.judge_cache import JudgeCache
from shared.metrics.judge_client import (
    BudgetDeferred,
    CallSpec,
    JudgeAnswer,
    JudgeCaller,
    JudgeCallError,
    JudgeDeferred,
    make_client,
)
from shared.metrics.judge_cost import (
    BUDGET_KEY,
    JudgeStats,
    ModelPrice,
    PriceTable,
    RunBudget,
    expected_call_cost,
    messages_text,
)
from shared.metrics.judge_limits import CircuitBreaker, RateLimiter
from shared.metrics.judge_parse import (
    JudgeParseError,
    describe_failure,
    expected_shape,
    normalise_score,
    parse_judge_json,
    read_score,
)
from shared.metrics.judge_prompt import JudgePrompt, load_judge_prompt, load_judge_prompt_sync

log = logging.getLogger(__name__)

RAW_TEXT_LIMIT = 4000

# Params that change how a judge is *run*, not what it *says*: excluded from the metric version,
# so tuning a timeout or moving the cache never re-scores everything.
OPERATIONAL_PARAMS = frozenset(
    {
        "base_url",
        "timeout_s",
        "max_retries",
        "requests_per_minute",
        "tokens_per_minute",
        "breaker_threshold",
        "cache",
        "cache_path",
        "prices",
        "price_table_file",
        "estimated_output_tokens",
        "estimated_claims",
        "fallback_file",
        "claims_fallback_file",
        "verify_fallback_file",
        "prompt_label",
    }
)


class JudgeParams(MetricParams):
    """What every judge metric accepts (see docs/judges.md)."""

    model: str = Field(default="gpt-4o-mini", min_length=1)
    base_url: str | None = Field(default=None, description="default OPENAI_BASE_URL")
    temperature: float | None = Field(default=0.0, ge=0, le=2, description="None: not sent")
    max_tokens: int = Field(default=512, gt=0, le=32768)
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    json_mode: bool = Field(default=True, description="response_format json_object")
    seed: int | None = None
    timeout_s: float = Field(default=30.0, gt=0, description="per HTTP attempt")
    max_retries: int = Field(default=3, ge=0, le=10, description="SDK retries on 408/409/429/5xx")
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    breaker_threshold: int = Field(default=5, ge=1, description="consecutive failures that open the circuit")
    cache: bool = True
    cache_path: str = "data/cache/judge.sqlite"
    prices: dict[str, ModelPrice] = Field(default_factory=dict, description="USD per 1M tokens by model")
    price_table_file: str | None = None
    estimated_output_tokens: int = Field(
        default=150, gt=0, description="output tokens per call before any answer was seen (estimates)"
    )
    prompt_label: str = "production"


class JudgeMetric(BaseMetric):
    """Shared machinery of judge metrics: run-scoped setup, prompts, calls, estimates, provenance.

    Subclasses list their prompts in `prompt_specs()` and implement `score(item)`, calling
    `ask(prompt_key, variables, schema)` for each judge question.
    """

    params: JudgeParams
    builtin_prompts: ClassVar[dict[str, str]] = {}  # prompt key -> built-in fallback text
    default_fallback_files: ClassVar[dict[str, Path]] = {}  # prompt key -> bundled fallback file

    def __init__(
        self, params: MetricParams | None = None, *, threshold: float | None = None, name: str | None = None
    ) -> None:
        super().__init__(params, threshold=threshold, name=name)
        self.prompts: dict[str, JudgePrompt] = {}
        self.caller: JudgeCaller | None = None
        self.breaker = CircuitBreaker(self.params.breaker_threshold)
        self._context: MetricContext | None = None
        self._before_setup: dict[str, JudgePrompt] | None = None  # local prompts, for estimates before setup

    # -- prompts ----------------------------------------------------------------------------
    def prompt_specs(self) -> dict[str, tuple[str, str | None]]:
        """prompt key -> (Langfuse prompt name, fallback file param value or None)."""
        raise NotImplementedError

    def allowed_variables(self, prompt_key: str) -> set[str]:
        """Template variables this metric fills for that prompt (checked against the prompt at setup)."""
        return set(STANDARD_VARIABLES)

    def builtin_prompt(self, prompt_key: str) -> str | None:
        """The metric's own prompt text, used when no fallback file is configured."""
        return self.builtin_prompts.get(prompt_key)

    def check_prompt(self, prompt_key: str, prompt: JudgePrompt, *, builtin: bool) -> None:
        """Check a resolved prompt against the metric's config (raise ConfigError); default none."""

    def _fallback_path(self, prompt_key: str, configured: str | None, base_dir: Path) -> Path | None:
        if configured:
            path = Path(configured)
            return path if path.is_absolute() else base_dir / path
        return self.default_fallback_files.get(prompt_key)

    # -- lifecycle --------------------------------------------------------------------------
    async def setup(self, context: MetricContext) -> None:
        """Resolve prompts, join the run's budget, limiter, cache and client (all in `context.shared`)."""
        self._context = context
        p = self.params
        shared = context.shared
        self.breaker = CircuitBreaker(p.breaker_threshold)
        for key, (prompt_name, configured) in self.prompt_specs().items():
            fallback = self._fallback_path(key, configured, context.base_dir)
            prompt = await load_judge_prompt(
                prompt_name,
                label=p.prompt_label,
                fallback_file=fallback,
                fallback_text=None if fallback else self.builtin_prompt(key),
                settings=context.settings,
                shared=shared,
            )
            self.check_prompt(key, prompt, builtin=prompt.is_fallback and fallback is None)
            unknown = sorted(set(prompt.variables) - self.allowed_variables(key))
            if unknown:
                raise ConfigError(
                    f"prompt '{prompt_name}' (version {prompt.version}) uses variables this metric does not fill: {unknown}",
                    field=f"metrics.{self.name}",
                    choices=sorted(self.allowed_variables(key)),
                )
            self.prompts[key] = prompt
        base_url = p.base_url or context.settings.openai_base_url
        budget: RunBudget = shared.setdefault(BUDGET_KEY, RunBudget(context.evaluation.max_cost_usd))
        limiter: RateLimiter = shared.setdefault(f"judge.limiter:{base_url}:{p.model}", RateLimiter())
        limiter.tighten(p.requests_per_minute, p.tokens_per_minute)
        stats: JudgeStats = shared.setdefault(f"judge.stats:{base_url}:{p.model}", JudgeStats())
        cache: JudgeCache | None = None
        if p.cache:
            path = Path(p.cache_path)
            path = path if path.is_absolute() or p.cache_path == ":memory:" else context.base_dir / path
            if f"judge.cache:{path}" not in shared:
                shared[f"judge.cache:{path}"] = JudgeCache(path)
            cache = shared[f"judge.cache:{path}"]
        client = None
        if not context.dry_run:
            client_key = f"judge.client:{base_url}:{p.timeout_s}:{p.max_retries}"
            if client_key not in shared:
                shared[client_key] = make_client(
                    context.settings, base_url=base_url, timeout_s=p.timeout_s, max_retries=p.max_retries
                )
            client = shared[client_key]
        prices = PriceTable.from_config(p.prices, self._price_file(context.base_dir))
        self.caller = JudgeCaller(
            client=client,
            spec=CallSpec(p.model, p.temperature, p.max_tokens, p.max_tokens_field, p.json_mode, p.seed),
            base_url=base_url,
            prices=prices,
            budget=budget,
            limiter=limiter,
            breaker=self.breaker,
            cache=cache,
            stats=stats,
            in_flight=shared.setdefault("judge.in_flight", {}),
            dry_run=context.dry_run,
        )
        for prompt in self.prompts.values():  # what earlier runs' answers cost: budget and estimates
            self.caller.learn_from_cache(prompt.name)

    def _price_file(self, base_dir: Path) -> Path | None:
        if not self.params.price_table_file:
            return None
        path = Path(self.params.price_table_file)
        return path if path.is_absolute() else base_dir / path

    async def aclose(self) -> None:
        """Close the run-shared client and cache (idempotent: every judge metric of the run calls it)."""
        self.caller = None
        if self._context is None:
            return
        shared = self._context.shared
        for key in [k for k in shared if k.startswith(("judge.client:", "judge.cache:"))]:
            resource = shared.pop(key, None)
            if isinstance(resource, JudgeCache):
                resource.close()
            elif resource is not None:
                await resource.close()

    # -- identity ---------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        """Judge model, prompts (name and version) and temperature: part of the metric version."""
        prompts = self.prompts or self._local_prompts()
        return {
            "model": self.params.model,
            "temperature": self.params.temperature,
            "prompts": {key: [p.name, p.version] for key, p in sorted(prompts.items())},
        }

    def _local_prompts(self) -> dict[str, JudgePrompt]:
        """Before `setup`: the fallback files' versions (setup may replace them by Langfuse versions)."""
        out: dict[str, JudgePrompt] = {}
        for key, (name, configured) in self.prompt_specs().items():
            path = self._fallback_path(key, configured, self._paths_base())
            text = None if path else self.builtin_prompt(key)
            found = load_judge_prompt_sync(name, fallback_file=path, fallback_text=text)
            if found is not None:
                out[key] = found
        return out

    @property
    def version(self) -> str:
        semantic = {k: v for k, v in self.params.model_dump(mode="json").items() if k not in OPERATIONAL_PARAMS}
        blob = json.dumps(
            {"key": self.key, "params": semantic, "threshold": self.threshold, "provenance": self.provenance()},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def prompt_name(self) -> str:
        return ",".join(p.name for _, p in sorted(self.prompts.items()))

    def prompt_version(self) -> str:
        return ",".join(p.version for _, p in sorted(self.prompts.items()))

    # -- scoring ----------------------------------------------------------------------------
    async def ask(
        self, prompt_key: str, variables: Mapping[str, Any], schema: dict[str, Any] | None, usage: Usage
    ) -> dict[str, Any]:
        """One judge question: render, call, parse. Raises JudgeDeferred, JudgeCallError, _ParseFailure."""
        if self.caller is None:
            raise JudgeCallError(f"metric '{self.name}': setup() was not called")
        prompt = self.prompts[prompt_key]
        messages = ensure_json_instruction(prompt.render(variables), self.params.json_mode)
        answer = await self.caller.call(messages, prompt)
        usage.add(answer)
        try:
            parsed = parse_judge_json(answer.content, schema)
            self.check_answer(prompt_key, parsed)
        except JudgeParseError as exc:
            self.caller.failed(str(exc), answer)
            truncated = " (the answer hit max_tokens)" if answer.finish_reason == "length" else ""
            message = describe_failure(f"{exc}{truncated}", self.expected_answer(prompt_key, schema), answer.content)
            raise _ParseFailure(message, answer.content) from None
        await self.caller.succeeded(answer, prompt)
        return parsed

    def check_answer(self, prompt_key: str, parsed: dict[str, Any]) -> None:
        """Extra semantic checks of a parsed answer (raise JudgeParseError); default none."""

    def expected_answer(self, prompt_key: str, schema: dict[str, Any] | None) -> str:
        """What the judge should have answered, for error rows: an example built from the schema."""
        return expected_shape(schema)

    async def execute(self, item: DatasetItem) -> MetricResult:
        usage = Usage()
        try:
            result = await self.score(item, usage)
        except BudgetDeferred as exc:
            result = MetricResult.deferred(str(exc))
            result.signals["deferred_by"] = "budget"
            if self.caller is not None:  # the run's budget notice counts these items
                self.caller.budget.deferred_items.add(item.id)
        except JudgeDeferred as exc:
            result = MetricResult.deferred(str(exc))
        except JudgeCallError as exc:
            result = MetricResult(status=MetricStatus.ERROR, error=f"judge call failed: {exc}")
        except _ParseFailure as exc:
            result = MetricResult(
                status=MetricStatus.ERROR,
                error=f"unparseable judge output: {exc.message}",
                signals={"raw": exc.raw[:RAW_TEXT_LIMIT]},
            )
        return self.stamp(result, usage)

    def stamp(self, result: MetricResult, usage: Usage) -> MetricResult:
        """Provenance, tokens and cost on every row, whatever its status."""
        result.model = self.params.model
        result.prompt_name = self.prompt_name() or None
        result.prompt_version = self.prompt_version() or None
        result.input_tokens = usage.input_tokens
        result.output_tokens = usage.output_tokens
        result.cost_usd = round(usage.cost_usd, 8)
        if usage.calls or usage.cache_hits:
            result.signals.setdefault("judge_calls", usage.calls)
            result.signals.setdefault("cache_hits", usage.cache_hits)
        if usage.latency_s:
            result.latency_s = round(usage.latency_s, 6)
        return result

    async def score(self, item: DatasetItem, usage: Usage) -> MetricResult:
        raise NotImplementedError

    # -- estimates --------------------------------------------------------------------------
    def planned_calls(self, item: DatasetItem) -> list[PlannedCall]:
        """The judge calls scoring `item` would make (a composite's later questions as expected counts)."""
        raise NotImplementedError

    def estimate(self, items: Sequence[DatasetItem]) -> CostEstimate:
        """Judge calls and cost for `items`: only calls that would really be made.

        Answers already in the cache and prompts repeated within `items` cost nothing; output tokens
        are the prompt's observed average (cache and this run), else `estimated_output_tokens`.
        """
        prices, stats = (self.caller.prices, self.caller.stats) if self.caller else (self._prices(), JudgeStats())
        seen: set[str] = set()
        calls = 0.0
        cost = 0.0
        for item in items:
            if self.missing_fields(item):
                continue
            for planned in self.planned_calls(item):
                prompt = self.prompts.get(planned.prompt_key)
                chars = planned.prompt_chars
                if planned.messages is not None:
                    messages = ensure_json_instruction(planned.messages, self.params.json_mode)
                    if self.caller is not None and prompt is not None:
                        key = self.caller.key(messages, prompt)
                        if key in seen or (self.caller.cache is not None and self.caller.cache.contains(key)):
                            continue
                        seen.add(key)
                    chars = len(messages_text(messages))
                expected, _ = expected_call_cost(
                    prices,
                    stats,
                    model=self.params.model,
                    max_tokens=self.params.max_tokens,
                    prompt_chars=chars,
                    prompt_name=prompt.name if prompt else planned.prompt_key,
                    default_output_tokens=self.params.estimated_output_tokens,
                )
                calls += planned.times
                cost += planned.times * expected
        return CostEstimate(calls=round(calls), cost_usd=round(cost, 6))

    def _prices(self) -> PriceTable:
        return PriceTable.from_config(self.params.prices, self._price_file(self._paths_base()))

    def _paths_base(self) -> Path:
        """Where relative prompt and price files resolve: the run's base_dir once set up, else the monitor's."""
        if self._context is not None:
            return self._context.base_dir
        return self.base_dir or Path.cwd()

    def rendered(self, prompt_key: str, variables: Mapping[str, Any]) -> list[dict[str, str]] | None:
        """The prompt's messages for these variables (None before setup when no local prompt exists)."""
        prompt = self.prompts.get(prompt_key)
        if prompt is None:
            if self._before_setup is None:
                self._before_setup = self._local_prompts()
            prompt = self._before_setup.get(prompt_key)
        return prompt.render(variables) if prompt is not None else None


@dataclass(frozen=True)
class PlannedCall:
    """One judge call an item would need; `messages` None: not known before an earlier answer
    (then `prompt_chars` is a typical length and `times` the expected count)."""

    prompt_key: str
    messages: list[dict[str, str]] | None
    times: float = 1.0
    prompt_chars: int = 0


class _ParseFailure(Exception):
    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.message = message
        self.raw = raw


class Usage:
    """Tokens, cost and calls of one item's judge questions (a composite asks several)."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.calls = 0
        self.cache_hits = 0
        self.latency_s = 0.0

    def add(self, answer: JudgeAnswer) -> None:
        if answer.free:  # paid by an earlier run, or by an identical call in flight: nothing is spent now
            self.cache_hits += 1
            return
        self.calls += 1
        self.input_tokens += answer.input_tokens
        self.output_tokens += answer.output_tokens
        self.cost_usd += answer.cost_usd
        self.latency_s += answer.latency_s


def ensure_json_instruction(messages: list[dict[str, str]], json_mode: bool) -> list[dict[str, str]]:
    """OpenAI's JSON mode requires the word 'json' in the messages: add a system line if absent."""
    if not json_mode or any("json" in m["content"].lower() for m in messages):
        return messages
    return [{"role": "system", "content": "Answer with a single JSON object."}, *messages]


# -- item -> template variables -------------------------------------------------------------

STANDARD_VARIABLES = (
    "query",
    "output",
    "actual_output",
    "expected_output",
    "context",
    "retrieved_content",
    "conversation",
    "additional_input",
    "additional_output",
)


def numbered(items: Sequence[Any] | None) -> str:
    """Retrieved content as the judge sees it: `[1] first\\n[2] second` (numbers match citations)."""
    return "\n".join(f"[{i}] {as_text(value)}" for i, value in enumerate(items or [], start=1))


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def field_value(item: DatasetItem, path: str) -> Any:
    """A dotted path into the item (`additional_output.decision`, `retrieved_content.0`)."""
    value: Any = item
    for part in path.split("."):
        if isinstance(value, DatasetItem):
            value = getattr(value, part, None)
        elif isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit():
            value = value[int(part)] if int(part) < len(value) else None
        else:
            value = getattr(value, part, None)
        if value is None:
            return None
    return value


def item_variables(item: DatasetItem, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every standard variable (empty when the item lacks it) plus `extra` name -> field path."""
    conversation = "\n".join(f"{m.role}: {m.content}" for m in item.conversation or [])
    variables = {
        "query": item.query or "",
        "output": item.actual_output or "",
        "actual_output": item.actual_output or "",
        "expected_output": item.expected_output or "",
        "context": numbered(item.retrieved_content),
        "retrieved_content": numbered(item.retrieved_content),
        "conversation": conversation,
        "additional_input": as_text(item.additional_input) if item.additional_input else "",
        "additional_output": as_text(item.additional_output) if item.additional_output else "",
    }
    for name, path in (extra or {}).items():
        value = field_value(item, path)
        variables[name] = numbered(value) if isinstance(value, list) else as_text(value)
    return variables


# -- llm_judge --------------------------------------------------------------------------------

DEFAULT_RUBRIC_TEMPLATE = """You are a strict evaluator of an AI assistant's answer.

Question:
{{query}}

Retrieved context:
{{context}}

Answer to evaluate:
{{output}}

Rate the answer's overall quality (correct, grounded in the context, complete, clear) on a scale
of $low (very poor) to $high (excellent). Reply with only a JSON object:
{"score": <$kind $low-$high>, "label": "<poor|fair|good|excellent>", "reasoning": "<one or two sentences>"}
"""

UNIT_SCALE = (0.0, 1.0)  # `score_scale: null`: the judge answers 0..1 itself


def scale_phrase(scale: tuple[float, float]) -> str:
    """How a rubric asks for a score on `scale`: 'integer 1-5', 'number 0-1'."""
    low, high = scale
    kind = "integer" if float(low).is_integer() and float(high).is_integer() and high - low > 1 else "number"
    return f"{kind} {low:g}-{high:g}"


def default_rubric(scale: tuple[float, float]) -> str:
    """The built-in rubric, asking for exactly the scale its answers are parsed on."""
    low, high = scale
    kind = scale_phrase(scale).split(" ", 1)[0]
    return string.Template(DEFAULT_RUBRIC_TEMPLATE).substitute(low=f"{low:g}", high=f"{high:g}", kind=kind)


DEFAULT_RUBRIC = default_rubric((1.0, 5.0))


def declared_scale(config: Mapping[str, Any], where: str) -> tuple[float, float] | None:
    """A prompt config's `score_scale` ([low, high], or null for 0..1); None when it declares none."""
    if "score_scale" not in config:
        return None
    value = config["score_scale"]
    if value is None:
        return UNIT_SCALE
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and value[0] < value[1]
    ):
        return (float(value[0]), float(value[1]))
    raise ConfigError(
        f"{where}: score_scale must be [low, high] with low < high, or null for 0..1; got {value!r}",
        field="score_scale",
    )


DEFAULT_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": ["number", "string"]},
        "label": {"type": ["string", "null"]},
        "reasoning": {"type": ["string", "null"]},
    },
    "required": ["score"],
}


class LLMJudgeParams(JudgeParams):
    prompt_name: str = Field(default="llm_judge", min_length=1, description="Langfuse prompt name")
    fallback_file: str | None = Field(default=None, description="local prompt (default: built-in rubric)")
    variables: dict[str, str] = Field(default_factory=dict, description="template variable -> item field path")
    required: list[str] = Field(default_factory=lambda: ["actual_output"], description="item fields that must be set")
    output_schema: dict[str, Any] | None = Field(default=None, description="JSON schema of the answer")
    score_field: str = "score"
    label_field: str = "label"
    reasoning_field: str = "reasoning"
    score_scale: tuple[float, float] | None = Field(default=(1.0, 5.0), description="raw scale -> 0..1; None: 0..1")
    label_scores: dict[str, float] | None = Field(default=None, description="label -> score, for label-only rubrics")

    @field_validator("score_scale")
    @classmethod
    def _low_below_high(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError(f"score_scale [low, high] needs low < high, got {list(value)}")
        return value


@metric(
    key="llm_judge",
    description="An LLM judge scores the item with a managed rubric prompt (0..1; provenance: model, prompt version).",
    required_fields=("actual_output",),
    default_threshold=0.5,
    kind="llm",
    direction="higher_is_better",
)
class LLMJudgeMetric(JudgeMetric):
    """One rubric question per item. Raw scores are mapped from `score_scale` (e.g. 1..5) to 0..1."""

    Params = LLMJudgeParams
    params: LLMJudgeParams

    def __init__(
        self, params: MetricParams | None = None, *, threshold: float | None = None, name: str | None = None
    ) -> None:
        super().__init__(params, threshold=threshold, name=name)
        self.scale: tuple[float, float] = self.params.score_scale or UNIT_SCALE  # the prompt may declare it

    def builtin_prompt(self, prompt_key: str) -> str | None:
        return default_rubric(self.params.score_scale or UNIT_SCALE) if prompt_key == "rubric" else None

    def check_prompt(self, prompt_key: str, prompt: JudgePrompt, *, builtin: bool) -> None:
        """A rubric's declared `score_scale` is the scale its answers are read on; a metric that
        sets a different one is a config error (it would read "1 (very poor)" on the wrong scale)."""
        where = f"prompt '{prompt.name}' (version {prompt.version})"
        declared = declared_scale(prompt.config, where)
        configured = self.params.score_scale or UNIT_SCALE
        if declared is None:
            if not builtin and self.params.label_scores is None:
                _warn_undeclared_scale(where, configured)
            self.scale = configured
            return
        if "score_scale" in self.params.model_fields_set and declared != configured:
            raise ConfigError(
                f"metric '{self.name}': score_scale {_scale_text(configured)} disagrees with {where}, "
                f"which declares score_scale {_scale_text(declared)} in its config; "
                "remove score_scale from the metric or make the two agree",
                field=f"metrics.{self.name}.params.score_scale",
            )
        self.scale = declared

    def prompt_specs(self) -> dict[str, tuple[str, str | None]]:
        return {"rubric": (self.params.prompt_name, self.params.fallback_file)}

    def allowed_variables(self, prompt_key: str) -> set[str]:
        return set(STANDARD_VARIABLES) | set(self.params.variables)

    def missing_fields(self, item: DatasetItem) -> list[str]:
        return [f for f in self.params.required if not _present(field_value(item, f))]

    def variables_for(self, item: DatasetItem) -> dict[str, str]:
        return item_variables(item, self.params.variables)

    def schema(self) -> dict[str, Any]:
        if self.params.output_schema is not None:
            return self.params.output_schema
        if self.params.score_field == "score":
            return DEFAULT_OUTPUT_SCHEMA
        return {"type": "object"}

    async def score(self, item: DatasetItem, usage: Usage) -> MetricResult:
        parsed = await self.ask("rubric", self.variables_for(item), self.schema(), usage)
        return self.interpret(parsed)

    def check_answer(self, prompt_key: str, parsed: dict[str, Any]) -> None:
        self._score_of(parsed)  # raises JudgeParseError: the breaker and the error row see it

    def expected_answer(self, prompt_key: str, schema: dict[str, Any] | None) -> str:
        p = self.params
        if p.output_schema is not None and p.output_schema.get("properties"):
            return expected_shape(p.output_schema)
        score = f"{{{json.dumps(p.score_field)}: <{scale_phrase(self.scale)}>, ...}}"
        if p.label_scores is None:
            return score
        labels = "|".join(json.dumps(label) for label in p.label_scores)
        return f"{score} or {{{json.dumps(p.label_field)}: {labels}, ...}}"

    def _score_of(self, parsed: dict[str, Any]) -> tuple[float, float | str]:
        p = self.params
        label = parsed.get(p.label_field)
        if p.score_field in parsed and parsed[p.score_field] is not None:
            raw = read_score(parsed[p.score_field], field=p.score_field)
            return normalise_score(raw, *self.scale), raw
        if p.label_scores is not None and isinstance(label, str):
            if label not in p.label_scores:
                raise JudgeParseError(f"label {label!r} is not one of {sorted(p.label_scores)}")
            return float(p.label_scores[label]), label
        raise JudgeParseError(f"the answer has no '{p.score_field}'")

    def interpret(self, parsed: dict[str, Any]) -> MetricResult:
        p = self.params
        score, raw = self._score_of(parsed)
        label = parsed.get(p.label_field)
        reasoning = as_text(parsed.get(p.reasoning_field))
        signals: dict[str, Any] = {"raw_score": raw}
        return self.result(score, reasoning, label=str(label) if label is not None else None, signals=signals)

    def planned_calls(self, item: DatasetItem) -> list[PlannedCall]:
        messages = self.rendered("rubric", self.variables_for(item))
        return [PlannedCall("rubric", messages, prompt_chars=0 if messages else rough_prompt_chars(item))]


_warned_undeclared: set[str] = set()


def _warn_undeclared_scale(where: str, scale: tuple[float, float]) -> None:
    """Once per prompt version and process: a custom rubric should say which scale it asks for."""
    if where in _warned_undeclared:
        return
    _warned_undeclared.add(where)
    log.warning(
        "%s declares no score_scale in its config: its answers are read on the metric's scale %s; "
        "declare it (Langfuse prompt config, or the file's front matter) so rubric and metric cannot drift apart",
        where,
        _scale_text(scale),
    )


def _scale_text(scale: tuple[float, float]) -> str:
    return "null (0..1)" if scale == UNIT_SCALE else f"[{scale[0]:g}, {scale[1]:g}]"


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


# -- faithfulness (composite) -----------------------------------------------------------------

CLAIMS_PROMPT = """Extract the factual claims made in the answer below. A claim is one short, self-contained
statement that can be checked against source documents. Ignore opinions, greetings and hedges.

Question:
{{query}}

Answer:
{{output}}

Reply with only a JSON object: {"claims": ["<claim 1>", "<claim 2>", ...]}
"""

VERIFY_PROMPT = """Decide whether the claim is supported by the context. Supported means the context states
it or directly implies it; anything else (contradicted, or simply not mentioned) is unsupported.

Context:
{{context}}

Claim:
{{claim}}

Reply with only a JSON object: {"supported": true|false, "reasoning": "<one sentence>"}
"""

CLAIMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"claims": {"type": "array", "items": {"type": "string"}}},
    "required": ["claims"],
}

VERIFY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"supported": {"type": "boolean"}, "reasoning": {"type": ["string", "null"]}},
    "required": ["supported"],
}


TYPICAL_CLAIM_CHARS = 80  # before any claim list was seen: one short sentence


def claims_to_check(extracted: Mapping[str, Any], max_claims: int | None) -> list[str]:
    """The distinct non-empty claims of an extraction answer, the first `max_claims` of them."""
    claims = [c.strip() for c in extracted.get("claims") or [] if isinstance(c, str) and c.strip()]
    return list(dict.fromkeys(claims))[:max_claims]


def rough_prompt_chars(item: DatasetItem) -> int:
    """A prompt's length when its template is unknown (no local prompt before setup): the item's
    texts plus a typical rubric."""
    texts = [item.query or "", item.actual_output or "", *(item.retrieved_content or [])]
    return len("\n".join(as_text(t) for t in texts)) + 1400


class FaithfulnessParams(JudgeParams):
    claims_prompt_name: str = "faithfulness_claims"
    claims_fallback_file: str | None = None
    verify_prompt_name: str = "faithfulness_verify"
    verify_fallback_file: str | None = None
    output_field: str = Field(default="actual_output", description="item field holding the answer")
    context_field: str = Field(default="retrieved_content", description="item field holding the sources")
    max_claims: int = Field(default=20, gt=0, le=200, description="claims beyond this are not checked")
    estimated_claims: int = Field(default=5, gt=0, description="claims per answer before any was seen (estimates)")


@metric(
    key="faithfulness",
    description="Share of the answer's claims supported by the retrieved content (claim extraction + per-claim checks).",
    required_fields=("actual_output", "retrieved_content"),
    default_threshold=0.8,
    kind="llm",
    direction="higher_is_better",
)
class FaithfulnessMetric(JudgeMetric):
    """Composite judge: extract claims, check each against the context, score = supported / total.

    The sub-scores (each claim, its verdict and the judge's reason) go into signals. Each sub-call is
    cached on its own, so a run cut short by the budget resumes without paying again.
    """

    Params = FaithfulnessParams
    params: FaithfulnessParams
    builtin_prompts: ClassVar[dict[str, str]] = {"claims": CLAIMS_PROMPT, "verify": VERIFY_PROMPT}

    def __init__(
        self, params: MetricParams | None = None, *, threshold: float | None = None, name: str | None = None
    ) -> None:
        super().__init__(params, threshold=threshold, name=name)
        self.expected_claims = float(self.params.estimated_claims)  # learned from cached claim lists at setup
        self.typical_claim_chars = TYPICAL_CLAIM_CHARS

    def prompt_specs(self) -> dict[str, tuple[str, str | None]]:
        p = self.params
        return {
            "claims": (p.claims_prompt_name, p.claims_fallback_file),
            "verify": (p.verify_prompt_name, p.verify_fallback_file),
        }

    def allowed_variables(self, prompt_key: str) -> set[str]:
        return {*STANDARD_VARIABLES, "claim", "output", "context"}

    def missing_fields(self, item: DatasetItem) -> list[str]:
        fields = (self.params.output_field, self.params.context_field)
        return [f for f in fields if not _present(field_value(item, f))]

    async def setup(self, context: MetricContext) -> None:
        """Also learn the claims per answer (the verification fan-out) from the cached claim lists."""
        await super().setup(context)
        self.expected_claims = float(self.params.estimated_claims)
        self.typical_claim_chars = TYPICAL_CLAIM_CHARS
        if self.caller is None or self.caller.cache is None:
            return
        contents = self.caller.cache.recent_contents(self.params.model, self.prompts["claims"].name)
        lists = [found for found in (self._claims_in(text) for text in contents) if found is not None]
        if lists:
            self.expected_claims = sum(len(claims) for claims in lists) / len(lists)
            all_claims = [claim for claims in lists for claim in claims]
            if all_claims:
                self.typical_claim_chars = round(sum(len(c) for c in all_claims) / len(all_claims))

    def _claims_in(self, text: str) -> list[str] | None:
        """The claims a cached extraction answer holds (as scoring would check them), None if unreadable."""
        try:
            return claims_to_check(parse_judge_json(text, CLAIMS_SCHEMA), self.params.max_claims)
        except JudgeParseError:
            return None

    def planned_calls(self, item: DatasetItem) -> list[PlannedCall]:
        """The extraction, then one check per claim: the cached claims when the extraction is cached,
        else the expected number of claims (learned from earlier answers)."""
        variables = self.variables_for(item)
        extraction = self.rendered("claims", variables)
        planned = [PlannedCall("claims", extraction, prompt_chars=0 if extraction else rough_prompt_chars(item))]
        known = self._cached_claims(extraction)
        if known is not None:
            for claim in known:
                check = self.rendered("verify", {**variables, "claim": claim})
                planned.append(PlannedCall("verify", check, prompt_chars=0 if check else rough_prompt_chars(item)))
            return planned
        sample = self.rendered("verify", {**variables, "claim": "x" * self.typical_claim_chars})
        chars = len(messages_text(ensure_json_instruction(sample, self.params.json_mode))) if sample else 0
        planned.append(
            PlannedCall("verify", None, times=self.expected_claims, prompt_chars=chars or rough_prompt_chars(item))
        )
        return planned

    def _cached_claims(self, extraction: list[dict[str, str]] | None) -> list[str] | None:
        prompt = self.prompts.get("claims")
        if extraction is None or prompt is None or self.caller is None or self.caller.cache is None:
            return None
        hit = self.caller.cache.get(self.caller.key(ensure_json_instruction(extraction, self.params.json_mode), prompt))
        return self._claims_in(hit.content) if hit is not None else None

    def variables_for(self, item: DatasetItem) -> dict[str, str]:
        variables = item_variables(item)
        output = field_value(item, self.params.output_field)
        context = field_value(item, self.params.context_field)
        variables["output"] = as_text(output)
        variables["context"] = numbered(context) if isinstance(context, list) else as_text(context)
        return variables

    async def score(self, item: DatasetItem, usage: Usage) -> MetricResult:
        variables = self.variables_for(item)
        extracted = await self.ask("claims", variables, CLAIMS_SCHEMA, usage)
        claims = claims_to_check(extracted, None)
        if not claims:
            return MetricResult.skipped("the answer makes no checkable claims")
        checked_claims = claims[: self.params.max_claims]
        verdicts = await asyncio.gather(
            *(self.ask("verify", {**variables, "claim": claim}, VERIFY_SCHEMA, usage) for claim in checked_claims),
            return_exceptions=True,
        )
        for verdict in verdicts:  # deferral first (a later run finishes the item), then errors
            if isinstance(verdict, JudgeDeferred):
                raise verdict
        for verdict in verdicts:
            if isinstance(verdict, BaseException):
                raise verdict
        details = [
            {"claim": claim, "supported": bool(v["supported"]), "reasoning": as_text(v.get("reasoning"))}
            for claim, v in zip(checked_claims, verdicts, strict=True)
            if isinstance(v, dict)
        ]
        supported = sum(1 for d in details if d["supported"])
        score = round(supported / len(details), 6)
        unsupported = [str(d["claim"]) for d in details if not d["supported"]]
        explanation = f"{supported}/{len(details)} claims supported" + (
            f"; unsupported: {'; '.join(unsupported[:3])}" if unsupported else ""
        )
        signals = {
            "n_claims": len(claims),
            "n_checked": len(details),
            "n_supported": supported,
            "claims": details,
        }
        return self.result(score, explanation, signals=signals)
