"""One door to the judge model: cache, dry run, circuit breaker, budget, limiter, SDK call, accounting.

DATAFLOW of `JudgeCaller.call(messages, prompt)`:
    cache key (base URL, model, prompt name+version, call params, messages)
    -> cache hit                  -> JudgeAnswer(cached=True), no call, no cost
    -> same key in flight         -> waits for that call: JudgeAnswer(shared=True), no cost (or its error)
    -> dry run                    -> JudgeDeferred (nothing is called in a dry run)
    -> circuit open               -> JudgeDeferred (N consecutive failures earlier in the run)
    -> budget.reserve(expected, worst)
                                  -> waits while calls in flight could pass the cap; BudgetDeferred
                                     when the money is not there (judge_cost.py)
    -> limiter.acquire            -> waits for requests/min and tokens/min quota
    -> openai SDK call            -> timeouts; 429/5xx retried by the SDK honouring Retry-After
    -> usage -> cost -> stats.observe, budget.settle, limiter.adjust
    -> JudgeAnswer (the caller parses it, then `succeeded` caches it or `failed` trips the breaker;
                    either ends the sharing of the in-flight call)

The `openai` SDK talks to any OpenAI-compatible base URL (OpenAI, Azure's v1 endpoint, vLLM, Ollama),
so nothing here is provider specific.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError
from shared.metrics.judge_cache import JudgeCache, cache_key
from shared.metrics.judge_cost import (
    BudgetExhausted,
    JudgeStats,
    PriceTable,
    RunBudget,
    estimate_tokens,
    expected_call_cost,
    messages_text,
)
from shared.metrics.judge_limits import CircuitBreaker, RateLimiter
from shared.settings import Settings

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from shared.metrics.judge_prompt import JudgePrompt


class JudgeDeferred(Exception):
    """No call was made for a reason that a later run removes (budget, open circuit, dry run)."""


class BudgetDeferred(JudgeDeferred):
    """No call was made because the run budget cannot cover it."""


class JudgeCallError(Exception):
    """The judge call failed after the SDK's retries (HTTP error, timeout, connection refused)."""


@dataclass(frozen=True)
class CallSpec:
    """Everything besides the messages that shapes the judge's answer (part of the cache key)."""

    model: str
    temperature: float | None = 0.0
    max_tokens: int = 512
    max_tokens_field: str = "max_tokens"
    json_mode: bool = True
    seed: int | None = None

    def request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.model, self.max_tokens_field: self.max_tokens}
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        if self.seed is not None:
            kwargs["seed"] = self.seed
        return kwargs


@dataclass(frozen=True)
class JudgeAnswer:
    content: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cached: bool
    latency_s: float
    key: str
    finish_reason: str | None = None
    usage_estimated: bool = False
    shared: bool = False  # the answer of an identical call in flight: paid by that call
    prompt_chars: int = 0  # the rendered prompt's length (the cache keeps it: chars per token)

    @property
    def free(self) -> bool:
        """Nothing was spent for this answer now (a cache hit or a shared in-flight answer)."""
        return self.cached or self.shared


def make_client(settings: Settings, *, base_url: str | None, timeout_s: float, max_retries: int) -> AsyncOpenAI:
    """An AsyncOpenAI client; a self-hosted base URL without a key gets a placeholder key.

    It sends over the SDK's aiohttp transport (`DefaultAioHttpClient`, the SDK's `aiohttp` extra;
    aiohttp is already ours): a fifth less client CPU per call than its default transport, which
    with dozens of calls in flight is time every answer waits in the event loop's queue.
    """
    from openai import AsyncOpenAI, DefaultAioHttpClient

    url = base_url or settings.openai_base_url
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    if not key:
        if not url:
            raise ConfigError("LLM judge: set OPENAI_API_KEY (and OPENAI_BASE_URL for a non-OpenAI judge)")
        key = "not-needed"  # vLLM / Ollama accept any key
    return AsyncOpenAI(
        api_key=key, base_url=url, timeout=timeout_s, max_retries=max_retries, http_client=DefaultAioHttpClient()
    )


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description of an SDK error for error rows and logs."""
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    text = f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "") + f": {message}"
    return text[:500]


class JudgeCaller:
    """A metric's judge calls. Budget, limiter, cache and client are run-shared; the breaker is the metric's."""

    def __init__(
        self,
        *,
        client: AsyncOpenAI | None,
        spec: CallSpec,
        base_url: str | None,
        prices: PriceTable,
        budget: RunBudget,
        limiter: RateLimiter,
        breaker: CircuitBreaker,
        cache: JudgeCache | None,
        stats: JudgeStats | None = None,
        in_flight: dict[str, asyncio.Future[JudgeAnswer]] | None = None,
        dry_run: bool = False,
    ) -> None:
        self.client = client
        self.spec = spec
        self.base_url = base_url or ""
        self.prices = prices
        self.budget = budget
        self.limiter = limiter
        self.breaker = breaker
        self.cache = cache
        self.stats = stats or JudgeStats()  # run-shared per model: every answer teaches every metric
        # Run-shared: key -> the answer of the call made for it, until that answer is cached or
        # rejected. Identical prompts in flight at the same moment share one call.
        self.in_flight = in_flight if in_flight is not None else {}
        self.dry_run = dry_run
        self.calls = 0

    def key(self, messages: list[dict[str, str]], prompt: JudgePrompt) -> str:
        return cache_key(
            base_url=self.base_url,
            prompt_name=prompt.name,
            prompt_version=prompt.version,
            spec=self.spec.__dict__,
            messages=messages,
        )

    def is_cached(self, messages: list[dict[str, str]], prompt: JudgePrompt) -> bool:
        return self.cache is not None and self.cache.contains(self.key(messages, prompt))

    async def call(self, messages: list[dict[str, str]], prompt: JudgePrompt) -> JudgeAnswer:
        key = self.key(messages, prompt)
        if self.cache is not None:
            hit = await self.cache.aget(key)
            if hit is not None:
                return JudgeAnswer(hit.content, hit.input_tokens, hit.output_tokens, hit.cost_usd, True, 0.0, key)
        leader = self.in_flight.get(key)
        if leader is not None:
            return await _follow(leader)
        if self.dry_run:
            raise JudgeDeferred("dry run: judge not called")
        answer: asyncio.Future[JudgeAnswer] = asyncio.get_running_loop().create_future()
        self.in_flight[key] = answer
        try:
            result = await self._call_model(key, messages, prompt)
        except BaseException as exc:
            if self.in_flight.get(key) is answer:
                del self.in_flight[key]
            answer.set_exception(_shareable(exc))
            answer.exception()  # marked as retrieved: nobody may have been waiting
            raise
        answer.set_result(result)
        return result

    async def _call_model(self, key: str, messages: list[dict[str, str]], prompt: JudgePrompt) -> JudgeAnswer:
        """The paid path: breaker, budget, limiter, SDK call, accounting."""
        if self.breaker.is_open:
            raise JudgeDeferred(
                f"circuit open after {self.breaker.threshold} consecutive judge failures "
                f"(last: {self.breaker.last_error})"
            )
        if self.client is None:
            raise JudgeCallError("no judge client (setup() was not called)")
        prompt_chars = len(messages_text(messages))
        expected, worst = self.expected_cost(prompt_chars, prompt.name)
        worst_in = self.stats.worst_input_tokens(prompt_chars)
        try:
            reservation = await self.budget.reserve(expected, worst)
        except BudgetExhausted as exc:
            raise BudgetDeferred(str(exc)) from None
        actual = 0.0
        try:
            await self.limiter.acquire(worst_in + self.spec.max_tokens)
            started = time.perf_counter()
            self.calls += 1
            try:
                # The SDK's generic `post` (its documented way to send a prepared body): the same
                # retries, timeouts and Retry-After handling as `chat.completions.create`, without
                # re-walking a body we already built (a third of the client's CPU per call).
                # `cast_to=object` hands back the parsed JSON: we read four fields, and building
                # the SDK's ChatCompletion model for them cost a fifth of the call's client CPU.
                response = await self.client.post(
                    "/chat/completions",
                    body={"messages": messages, **self.spec.request_kwargs()},
                    cast_to=object,
                )
            except Exception as exc:  # SDK errors after its own retries: APIStatusError, APITimeoutError, ...
                error = describe_error(exc)
                self.breaker.record_failure(error)
                raise JudgeCallError(error) from exc
            latency = time.perf_counter() - started
            choice, usage = _completion_parts(response)
            content = (choice["content"] if choice else None) or ""
            estimated = usage is None
            in_tokens = usage[0] if usage else self.stats.expected_input_tokens(prompt_chars)
            out_tokens = usage[1] if usage else estimate_tokens(content)
            actual = self.prices.cost(self.spec.model, in_tokens, out_tokens)
            if usage is not None:
                self.stats.observe(
                    prompt.name, prompt_chars=prompt_chars, input_tokens=in_tokens, output_tokens=out_tokens
                )
            self.limiter.adjust(in_tokens + out_tokens - (worst_in + self.spec.max_tokens))
        finally:
            self.budget.settle(reservation, actual)
        return JudgeAnswer(
            content=content,
            input_tokens=in_tokens,
            output_tokens=out_tokens,
            cost_usd=actual,
            cached=False,
            latency_s=round(latency, 6),
            key=key,
            finish_reason=choice.get("finish_reason") if choice else None,
            usage_estimated=estimated,
            prompt_chars=prompt_chars if not estimated else 0,
        )

    def expected_cost(
        self, prompt_chars: int, prompt_name: str, default_output_tokens: float | None = None
    ) -> tuple[float, float]:
        """(expected, worst) USD of one call: observed output tokens of this prompt, else the default
        (for the budget: `max_tokens`, the conservative choice before the first answers)."""
        return expected_call_cost(
            self.prices,
            self.stats,
            model=self.spec.model,
            max_tokens=self.spec.max_tokens,
            prompt_chars=prompt_chars,
            prompt_name=prompt_name,
            default_output_tokens=self.spec.max_tokens if default_output_tokens is None else default_output_tokens,
        )

    def learn_from_cache(self, prompt_name: str) -> None:
        """Seed this model's token statistics with the prompt's cached answers (earlier runs)."""
        if self.cache is None or prompt_name in self.stats.seeded:
            return
        self.stats.seeded.add(prompt_name)
        found = self.cache.prompt_stats(self.spec.model, prompt_name)
        self.stats.seed(
            prompt_name,
            answers=found.answers,
            output_tokens=found.output_tokens,
            prompt_chars=found.prompt_chars,
            input_tokens=found.input_tokens,
        )

    async def succeeded(self, answer: JudgeAnswer, prompt: JudgePrompt) -> None:
        """The answer parsed: reset the breaker and cache it (so no later run pays for it again)."""
        if answer.free:
            return
        self.breaker.record_success()
        try:
            if self.cache is not None:
                await self.cache.aput(
                    answer.key,
                    model=self.spec.model,
                    prompt_name=prompt.name,
                    prompt_version=prompt.version,
                    content=answer.content,
                    input_tokens=answer.input_tokens,
                    output_tokens=answer.output_tokens,
                    cost_usd=answer.cost_usd,
                    prompt_chars=answer.prompt_chars or None,
                )
        finally:  # from now on the cache answers identical prompts
            self.in_flight.pop(answer.key, None)

    def failed(self, error: str, answer: JudgeAnswer) -> None:
        """The answer did not parse: a judge that keeps answering garbage trips the breaker too."""
        self.in_flight.pop(answer.key, None)
        if not answer.free:
            self.breaker.record_failure(error)


def _completion_parts(response: object) -> tuple[dict[str, Any] | None, tuple[int, int] | None]:
    """The first choice's message content and finish_reason, and (prompt, completion) tokens or None
    when the server reports no usage, from a Chat Completions answer read as JSON.

    A shape no OpenAI-compatible server sends (no `choices`, a choice without a message, usage
    without token counts) raises ValueError: an error row, as the SDK model's missing attributes were.
    """
    if not isinstance(response, dict) or "choices" not in response:
        raise ValueError("the judge's answer is not a chat completion (no 'choices')")
    choice: dict[str, Any] | None = None
    choices = response["choices"]
    if choices:
        first = choices[0] if isinstance(choices, list) else None
        message = first.get("message") if isinstance(first, dict) else None
        if not isinstance(first, dict) or not isinstance(message, dict):
            raise ValueError("the judge's answer has no choices[0].message object")
        choice = {"content": message.get("content"), "finish_reason": first.get("finish_reason")}
    usage = response.get("usage")
    if usage is None:
        return choice, None
    counts = [usage.get(k) for k in ("prompt_tokens", "completion_tokens")] if isinstance(usage, dict) else []
    numbers = [int(n) for n in counts if isinstance(n, int | float) and not isinstance(n, bool)]
    if len(numbers) != 2:
        raise ValueError("the judge's answer has a usage object without prompt_tokens and completion_tokens")
    return choice, (numbers[0], numbers[1])


async def _follow(leader: asyncio.Future[JudgeAnswer]) -> JudgeAnswer:
    """The answer of an identical call in flight (shield: this caller's timeout must not cancel it)."""
    try:
        answer = await asyncio.shield(leader)
    except JudgeDeferred as exc:
        raise type(exc)(str(exc)) from None  # a fresh exception per caller, same meaning
    except JudgeCallError as exc:
        raise JudgeCallError(str(exc)) from None
    return dataclasses.replace(answer, shared=True, latency_s=0.0)


def _shareable(exc: BaseException) -> Exception:
    """What the callers waiting for a failed call see: its deferral or error, never its cancellation."""
    if isinstance(exc, JudgeDeferred | JudgeCallError):
        return exc
    return JudgeCallError(f"the identical judge call this one waited for ended ({type(exc).__name__})")
