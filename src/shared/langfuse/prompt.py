"""Prompts managed in Langfuse, served from a TTL cache that webhooks (and other processes) can invalidate.

Long-running processes (the scheduler, LLM-judge metrics) must pick up a new prompt version without a
restart. `LangfusePromptManager` fetches through the official SDK (`Langfuse.get_prompt` with the SDK's
own cache turned off, so this class alone decides what is fresh) and keeps its own cache, because it
needs things the SDK cache does not give: exact per-name invalidation, a shared cross-process stamp
(`prompt_cache.py`), counters, and change listeners.

DATAFLOW of `get(name, label=..., version=...)`:
    shared stamps (at most once per check_interval_s)  -> drop entries whose prompt was bumped elsewhere
    cache hit (fresh, same stamp)                       -> return it                      stats.hits
    otherwise fetch via SDK                             -> cache it, return it            stats.misses/fetches
    fetch failed, an older entry exists                 -> serve it, logged               stats.stale_served
    fetch failed, a fallback was given                  -> ManagedPrompt(is_fallback=True) stats.fallbacks
    fetch failed, nothing to serve                      -> PromptUnavailableError

Every `ManagedPrompt` carries name, version and label, which metrics put into a score's provenance
(`ManagedPrompt.provenance()`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from langfuse.model import TemplateParser

from shared.errors import EvalmonError
from shared.langfuse.prompt_cache import PromptInvalidation, build_invalidation
from shared.settings import Settings

log = logging.getLogger(__name__)

PromptType = Literal["text", "chat"]
ChatMessages = list[dict[str, Any]]
PromptBody = str | ChatMessages


class PromptError(EvalmonError):
    """Base class of prompt-management errors."""


class PromptUnavailableError(PromptError):
    """Langfuse could not be reached (or refused) and there was no cached copy and no fallback."""


class PromptCompileError(PromptError):
    """A prompt could not be compiled strictly: variables missing or placeholders left unrendered."""

    def __init__(self, name: str, *, missing: list[str]) -> None:
        self.name = name
        self.missing = missing
        super().__init__(
            f"prompt {name!r}: unrendered placeholders {missing}; pass them to compile() "
            "or call compile(strict=False) to leave them in place"
        )


@dataclass(frozen=True)
class PromptChange:
    """What listeners receive when a prompt changed (from a webhook, a local edit, or another process)."""

    name: str
    action: str  # created | updated | deleted | invalidated
    version: int | None = None
    labels: tuple[str, ...] = ()
    source: Literal["webhook", "local", "remote"] = "local"


Listener = Callable[[PromptChange], Awaitable[None] | None]


@dataclass(frozen=True)
class ManagedPrompt:
    """A prompt as served to callers: the text or chat messages plus where it came from."""

    name: str
    version: int | None
    label: str | None
    prompt: PromptBody
    config: dict[str, Any] = field(default_factory=dict)
    is_fallback: bool = False
    type: PromptType = "text"
    labels: tuple[str, ...] = ()

    @property
    def variables(self) -> list[str]:
        """Template variables ({{name}}) in order of appearance, without duplicates."""
        found: list[str] = []
        if isinstance(self.prompt, str):
            found = TemplateParser.find_variable_names(self.prompt)
        else:
            for msg in self.prompt:
                if msg.get("type") != "placeholder":
                    found += TemplateParser.find_variable_names(str(msg.get("content", "")))
        return list(dict.fromkeys(found))

    @property
    def placeholders(self) -> list[str]:
        """Names of chat message placeholders (lists of messages to splice in)."""
        if isinstance(self.prompt, str):
            return []
        return [str(m["name"]) for m in self.prompt if m.get("type") == "placeholder"]

    def compile(self, strict: bool = True, **variables: Any) -> PromptBody:
        """Render {{variables}} (and chat placeholders) with Langfuse's own template rules.

        strict=True (the default) raises `PromptCompileError` when any template variable or
        placeholder is not given, so a prompt never reaches a model with `{{x}}` still in it.
        strict=False renders what it can, leaves the rest in place and logs a warning.
        Extra variables are ignored (a new prompt version may stop using one).
        """
        missing = [v for v in [*self.variables, *self.placeholders] if v not in variables]
        if missing:
            if strict:
                raise PromptCompileError(self.name, missing=missing)
            log.warning("prompt %r v%s compiled with unrendered placeholders %s", self.name, self.version, missing)
        if isinstance(self.prompt, str):
            return TemplateParser.compile_template(self.prompt, variables)
        out: ChatMessages = []
        for msg in self.prompt:
            if msg.get("type") == "placeholder":
                value = variables.get(str(msg["name"]))
                if value is None:
                    out.append(dict(msg))
                    continue
                if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
                    raise PromptCompileError(self.name, missing=[f"{msg['name']} (must be a list of messages)"])
                for m in value:
                    rendered = dict(m)
                    rendered["content"] = TemplateParser.compile_template(str(m.get("content", "")), variables)
                    out.append(rendered)
            else:
                content = TemplateParser.compile_template(str(msg.get("content", "")), variables)
                out.append({"role": msg.get("role"), "content": content})
        return out

    def provenance(self) -> dict[str, Any]:
        """What a score records about the prompt it was produced with."""
        return {
            "prompt_name": self.name,
            "prompt_version": self.version,
            "prompt_label": self.label,
            "prompt_is_fallback": self.is_fallback,
        }


@dataclass
class PromptStats:
    """Counters a process can log or export; fallbacks and stale serves are never silent."""

    hits: int = 0
    misses: int = 0
    fetches: int = 0
    fetch_errors: int = 0
    fallbacks: int = 0
    stale_served: int = 0
    invalidations: int = 0
    remote_invalidations: int = 0
    invalidation_errors: int = 0
    listener_errors: int = 0
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Entry:
    prompt: ManagedPrompt
    fetched_at: float
    stamp: int
    stale: bool = False  # invalidated: never a hit, but still served if Langfuse is down


def _cache_key(name: str, label: str | None, version: int | None) -> tuple[str, str]:
    return (name, f"version:{version}" if version is not None else f"label:{label or 'production'}")


def _from_sdk(client_prompt: Any, *, label: str | None) -> ManagedPrompt:
    """Convert the SDK's TextPromptClient / ChatPromptClient into our frozen value."""
    raw = client_prompt.prompt
    body: PromptBody
    kind: PromptType
    if isinstance(raw, str):
        body, kind = raw, "text"
    else:
        body = [dict(m) for m in raw]
        kind = "chat"
    config = client_prompt.config if isinstance(client_prompt.config, dict) else {}
    return ManagedPrompt(
        name=client_prompt.name,
        version=client_prompt.version,
        label=label,
        prompt=body,
        config=dict(config),
        is_fallback=False,
        type=kind,
        labels=tuple(client_prompt.labels or ()),
    )


def _default_client(settings: Settings) -> Any:
    """The official SDK client, tracing off: this process only reads and edits prompts with it."""
    from langfuse import Langfuse

    secret = settings.langfuse_secret_key.get_secret_value() if settings.langfuse_secret_key else None
    return Langfuse(
        public_key=settings.langfuse_public_key,
        secret_key=secret,
        base_url=settings.langfuse_base_url,
        timeout=max(1, round(settings.langfuse_timeout_s)),
        tracing_enabled=False,
    )


def _describe(exc: BaseException) -> str:
    """A short reason for logs: the HTTP status for API errors (their text embeds response headers)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return f"{type(exc).__name__}: HTTP {status}"
    return f"{type(exc).__name__}: {exc}"[:200]


def _is_not_found(exc: BaseException) -> bool:
    return type(exc).__name__ == "NotFoundError" or getattr(exc, "status_code", None) == 404


class LangfusePromptManager:
    """Get, compile, create and promote Langfuse prompts, with a TTL cache that can be invalidated.

    `invalidation=None` means "as the settings say" (`build_invalidation`: Postgres if DATABASE_URL,
    else the stamp file, else process-local only). Pass a `PromptInvalidation` to choose explicitly.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        ttl_s: float = 60.0,
        client: Any = None,
        invalidation: PromptInvalidation | None = None,
        check_interval_s: float = 2.0,
        max_retries: int = 2,
        fetch_timeout_s: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._ttl_s = ttl_s
        self._client = client
        self.invalidation = invalidation if invalidation is not None else build_invalidation(settings)
        self._check_interval_s = check_interval_s
        self._max_retries = max_retries
        self._fetch_timeout_s = fetch_timeout_s
        self._clock = clock
        self.stats = PromptStats()
        self._lock = threading.RLock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._stamps: dict[str, int] = {}
        self._stamps_loaded = False
        self._last_check = float("-inf")
        self._listeners: list[Listener] = []

    # -- client -----------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The Langfuse SDK client (built lazily so constructing a manager never touches the network)."""
        with self._lock:
            if self._client is None:
                self._client = _default_client(self._settings)
            return self._client

    # -- reading ----------------------------------------------------------------------------

    def get(
        self,
        name: str,
        *,
        label: str | None = "production",
        version: int | None = None,
        fallback: PromptBody | None = None,
    ) -> ManagedPrompt:
        """The prompt `name` at `version`, or else at `label` (default production), cached for ttl_s."""
        if not name:
            raise ValueError("prompt name must not be empty")
        label = None if version is not None else (label or "production")
        key = _cache_key(name, label, version)
        self._check_remote_stamps()
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one fetch per key at a time; waiters then find the fresh entry
            with self._lock:
                entry = self._cache.get(key)
                stamp = self._stamps.get(name, 0)
                fresh = entry is not None and not entry.stale and self._clock() - entry.fetched_at < self._ttl_s
                if entry is not None and fresh and entry.stamp == stamp:
                    self.stats.hits += 1
                    return entry.prompt
                self.stats.misses += 1
            try:
                fetched = self._fetch(name, label=label, version=version)
            except Exception as exc:
                return self._serve_without_langfuse(name, label, version, fallback, entry, exc)
            with self._lock:
                self._cache[key] = _Entry(prompt=fetched, fetched_at=self._clock(), stamp=stamp)
            return fetched

    async def aget(
        self,
        name: str,
        *,
        label: str | None = "production",
        version: int | None = None,
        fallback: PromptBody | None = None,
    ) -> ManagedPrompt:
        """`get` in a worker thread: the SDK and the stamp store are blocking, the event loop is not."""
        return await asyncio.to_thread(self.get, name, label=label, version=version, fallback=fallback)

    def _fetch(
        self, name: str, *, label: str | None, version: int | None, max_retries: int | None = None
    ) -> ManagedPrompt:
        with self._lock:
            self.stats.fetches += 1
        client_prompt = self.client.get_prompt(
            name,
            version=version,
            label=label if version is None else None,
            cache_ttl_seconds=0,  # the SDK cache stays out of the way: ours decides freshness
            max_retries=self._max_retries if max_retries is None else max_retries,
            fetch_timeout_seconds=self._fetch_timeout_s,
        )
        return _from_sdk(client_prompt, label=label)

    def _serve_without_langfuse(
        self,
        name: str,
        label: str | None,
        version: int | None,
        fallback: PromptBody | None,
        entry: _Entry | None,
        exc: Exception,
    ) -> ManagedPrompt:
        reason = _describe(exc)
        with self._lock:
            self.stats.fetch_errors += 1
            self.stats.last_error = reason
        if entry is not None:
            with self._lock:
                self.stats.stale_served += 1
            log.warning(
                "prompt %r: Langfuse fetch failed (%s); serving cached version %s", name, reason, entry.prompt.version
            )
            return entry.prompt
        if fallback is not None:
            with self._lock:
                self.stats.fallbacks += 1
            log.warning("prompt %r: Langfuse fetch failed (%s); serving the FALLBACK prompt", name, reason)
            return ManagedPrompt(
                name=name,
                version=None,
                label=label,
                prompt=fallback if isinstance(fallback, str) else [dict(m) for m in fallback],
                config={},
                is_fallback=True,
                type="text" if isinstance(fallback, str) else "chat",
            )
        what = f"version {version}" if version is not None else f"label {label!r}"
        if _is_not_found(exc):
            raise PromptUnavailableError(f"prompt {name!r} ({what}) does not exist in Langfuse") from exc
        raise PromptUnavailableError(
            f"prompt {name!r} ({what}): Langfuse unreachable ({reason}) and no cached copy or fallback"
        ) from exc

    # -- invalidation -----------------------------------------------------------------------

    def mark_stale(self, name: str, *, stamp: int | None = None) -> int:
        """Make every cached entry of `name` in this process a miss; returns how many there were.

        Stale entries are kept only as a last resort while Langfuse is unreachable (logged and
        counted as stale_served). `stamp` (the shared stamp the caller just bumped) is recorded so
        this process does not mistake its own bump for another process's change.
        """
        with self._lock:
            keys = self._mark_stale_unlocked(name)
            self.stats.invalidations += 1
            if stamp is not None:
                self._stamps[name] = max(stamp, self._stamps.get(name, 0))
        return len(keys)

    def _mark_stale_unlocked(self, name: str) -> list[tuple[str, str]]:
        keys = [k for k in self._cache if k[0] == name]
        for k in keys:
            self._cache[k].stale = True
        return keys

    def invalidate(self, name: str) -> int | None:
        """Mark `name` stale here and bump the shared stamp so every other process drops it too."""
        new_stamp: int | None = None
        if self.invalidation is not None:
            new_stamp = self.invalidation.bump(name)
        self.mark_stale(name, stamp=new_stamp)
        return new_stamp

    def _check_remote_stamps(self, *, force: bool = False) -> None:
        """Read the shared stamps (at most once per check_interval_s) and drop entries bumped elsewhere."""
        if self.invalidation is None:
            return
        now = self._clock()
        with self._lock:
            if not force and now - self._last_check < self._check_interval_s:
                return
            self._last_check = now
        try:
            current = self.invalidation.snapshot()
        except Exception as exc:
            with self._lock:
                self.stats.invalidation_errors += 1
                self.stats.last_error = f"stamp check: {type(exc).__name__}"
            log.warning(
                "prompt cache: reading %s failed (%s); serving cache by TTL only",
                self.invalidation.describe(),
                type(exc).__name__,
            )
            return
        changed: list[str] = []
        with self._lock:
            first = not self._stamps_loaded
            for name, stamp in current.items():
                if stamp > self._stamps.get(name, 0):
                    if not first:
                        changed.append(name)
                    self._stamps[name] = stamp
            self._stamps_loaded = True
            for name in changed:
                self._mark_stale_unlocked(name)
                self.stats.remote_invalidations += 1
        for name in changed:
            log.info("prompt %r changed in another process; cached copies marked stale", name)
            self.notify_change(PromptChange(name=name, action="invalidated", source="remote"))

    # -- listeners --------------------------------------------------------------------------

    def on_change(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(PromptChange)` whenever a prompt changes; returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def notify_change(self, change: PromptChange) -> None:
        """Call listeners from synchronous code; async listeners run on the running loop if any, else to completion."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                result = listener(change)
                if inspect.isawaitable(result):
                    self._run_awaitable(result)
            except Exception:
                with self._lock:
                    self.stats.listener_errors += 1
                log.exception("prompt change listener %r failed for %r", listener, change.name)

    async def anotify_change(self, change: PromptChange) -> None:
        """Call listeners from async code: sync ones in a worker thread, async ones awaited; errors are logged."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                if inspect.iscoroutinefunction(listener):
                    await listener(change)
                else:
                    result = await asyncio.to_thread(listener, change)
                    if inspect.isawaitable(result):
                        await result
            except Exception:
                with self._lock:
                    self.stats.listener_errors += 1
                log.exception("prompt change listener %r failed for %r", listener, change.name)

    @staticmethod
    def _run_awaitable(result: Awaitable[Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:

            async def _wait() -> None:
                await result

            asyncio.run(_wait())
        else:
            loop.create_task(_as_coro(result))

    # -- writing ----------------------------------------------------------------------------

    def create_or_update(
        self,
        name: str,
        prompt: PromptBody,
        *,
        labels: list[str] | None = None,
        config: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        commit_message: str | None = None,
    ) -> ManagedPrompt:
        """Make `prompt` the newest version of `name`, idempotently.

        If the newest version already has this content and config, no new version is created;
        missing `labels` are added to it. Otherwise a new version is created with `labels`.
        Either way the cache for `name` is invalidated here and in other processes.
        """
        kind: PromptType = "text" if isinstance(prompt, str) else "chat"
        labels = list(labels or [])
        latest = self._latest_or_none(name)
        if latest is not None and latest.prompt == _normalise_body(prompt) and latest.config == (config or {}):
            result = latest
            if not set(labels) <= set(latest.labels):
                assert latest.version is not None
                merged = sorted(set(latest.labels) | set(labels) - {"latest"})
                self.client.update_prompt(name=name, version=latest.version, new_labels=merged)
                result = replace(latest, labels=tuple(merged))
            log.info("prompt %r: content unchanged, kept version %s", name, latest.version)
        else:
            created = self.client.create_prompt(
                name=name,
                prompt=prompt,
                labels=labels,
                tags=tags,
                type=kind,
                config=config or {},
                commit_message=commit_message,
            )
            result = _from_sdk(created, label=None)
            log.info("prompt %r: created version %s with labels %s", name, result.version, labels)
        self.invalidate(name)
        self.notify_change(
            PromptChange(name=name, action="updated", version=result.version, labels=result.labels, source="local")
        )
        return result

    def promote_version(self, name: str, version: int, label: str = "production") -> ManagedPrompt:
        """Move `label` (default production) to `version` of `name`; Langfuse takes it off the previous holder."""
        current = self._fetch(name, label=None, version=version)
        new_labels = sorted((set(current.labels) | {label}) - {"latest"})
        self.client.update_prompt(name=name, version=version, new_labels=new_labels)
        self.invalidate(name)
        promoted = replace(current, label=label, labels=tuple(new_labels))
        self.notify_change(
            PromptChange(name=name, action="updated", version=version, labels=tuple(new_labels), source="local")
        )
        return promoted

    def _latest_or_none(self, name: str) -> ManagedPrompt | None:
        try:
            return self._fetch(name, label="latest", version=None, max_retries=0)
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise


async def _as_coro(awaitable: Awaitable[Any]) -> None:
    await awaitable


def _normalise_body(prompt: PromptBody) -> PromptBody:
    """Chat messages as the SDK returns them (type message/placeholder) so equality is meaningful."""
    if isinstance(prompt, str):
        return prompt
    out: ChatMessages = []
    for m in prompt:
        if m.get("type") == "placeholder":
            out.append({"type": "placeholder", "name": m["name"]})
        else:
            out.append({"type": "message", "role": m["role"], "content": m["content"]})
    return out
