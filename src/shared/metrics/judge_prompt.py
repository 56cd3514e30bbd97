"""The judge's rubric prompt: from Langfuse (by name and label) or a local fallback file.

With Langfuse credentials the prompt comes from the run-shared `LangfusePromptManager` (TTL
cache, webhook invalidation), so a long-running scheduler picks up a new version at its next run.
Without credentials, or when Langfuse is unreachable, the local fallback file is used and the
version is `local-<hash of the file's content>`: editing the file changes the metric version, so
affected items are scored again, exactly as a new Langfuse version would.

A fallback file is either text (`.txt`, `.md`: one user message, optionally opened by YAML front
matter between `---` lines, which is its config) or YAML/JSON holding a list of chat messages
(`[{role, content}]`) or `{messages: [...], config: {...}}`. The config is where a rubric declares
what it asks for (`score_scale: [1, 5]`), as a Langfuse prompt's config does. Variables use
Langfuse's `{{name}}` syntax and are rendered by `ManagedPrompt.compile` (strict).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from shared.errors import ConfigError
from shared.settings import Settings

if TYPE_CHECKING:  # the Langfuse SDK is slow to import: only judge runs pay for it
    from shared.langfuse.prompt import LangfusePromptManager, ManagedPrompt, PromptBody

log = logging.getLogger(__name__)

MANAGER_KEY = "judge.prompt_manager"


@dataclass(frozen=True)
class JudgePrompt:
    """A resolved prompt plus the version string that goes into provenance and cache keys."""

    managed: ManagedPrompt
    version: str

    @property
    def name(self) -> str:
        return self.managed.name

    @property
    def is_fallback(self) -> bool:
        return self.managed.is_fallback

    @property
    def variables(self) -> list[str]:
        return self.managed.variables

    @property
    def config(self) -> dict[str, Any]:
        """The prompt's config (Langfuse's, or a local file's front matter / `config:`)."""
        return dict(self.managed.config or {})

    def render(self, variables: Mapping[str, Any]) -> list[dict[str, str]]:
        """Chat messages ready for the API (a text prompt becomes one user message)."""
        body = self.managed.compile(strict=True, **dict(variables))
        if isinstance(body, str):
            return [{"role": "user", "content": body}]
        return [{"role": str(m.get("role", "user")), "content": str(m.get("content", ""))} for m in body]


def read_fallback(path: Path) -> tuple[PromptBody, dict[str, Any]]:
    """The prompt body and config in a fallback file (see the module docstring for formats)."""
    if not path.is_file():
        raise ConfigError(f"judge prompt fallback file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        return split_front_matter(text, path)
    loaded = yaml.safe_load(text)
    config: dict[str, Any] = {}
    if isinstance(loaded, dict):
        config = dict(loaded.get("config") or {})
        loaded = loaded.get("messages", loaded.get("prompt"))
    if isinstance(loaded, str):
        return loaded, config
    if isinstance(loaded, list) and all(isinstance(m, dict) and "role" in m for m in loaded):
        return [dict(m) for m in loaded], config
    raise ConfigError(f"{path}: a prompt file holds text, a list of {{role, content}} messages, or {{messages: [...]}}")


def split_front_matter(text: str, path: Path) -> tuple[str, dict[str, Any]]:
    """A text prompt's YAML front matter (`---` lines around it, at the very top) and the body after it."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != "---":
        return text, {}
    for index, line in enumerate(lines[1:], start=1):
        if line.rstrip("\r\n") == "---":
            header = "".join(lines[1:index])
            break
    else:
        raise ConfigError(f"{path}: the front matter opened by '---' on line 1 is never closed by a '---' line")
    try:
        config = yaml.safe_load(header) if header.strip() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: the front matter is not valid YAML ({exc})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the front matter must be a YAML mapping, for example 'score_scale: [1, 5]'")
    return "".join(lines[index + 1 :]), config


def local_version(body: PromptBody, config: Mapping[str, Any] | None = None) -> str:
    """`local-<hash>` of the body, and of the config when there is one (a new declared scale is a new version)."""
    blob = body if isinstance(body, str) else json.dumps(body, sort_keys=True, ensure_ascii=False)
    if config:
        blob += "\n" + json.dumps(config, sort_keys=True, ensure_ascii=False, default=str)
    return "local-" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:10]


def langfuse_configured(settings: Settings) -> bool:
    return bool(settings.langfuse_public_key and settings.langfuse_secret_key)


def shared_manager(settings: Settings, shared: dict[str, Any]) -> LangfusePromptManager:
    """One prompt manager per run (or per long-running process that passes the same dict)."""
    from shared.langfuse.prompt import LangfusePromptManager

    manager = shared.get(MANAGER_KEY)
    if manager is None:
        manager = shared.setdefault(MANAGER_KEY, LangfusePromptManager(settings, ttl_s=60.0))
    return manager


def _fallback_prompt(name: str, fallback_file: Path | None, fallback_text: str | None) -> ManagedPrompt | None:
    """The local prompt: a file, else a metric's built-in text, else None."""
    from shared.langfuse.prompt import ManagedPrompt

    if fallback_file is not None:
        body, config = read_fallback(fallback_file)
    elif fallback_text is not None:
        body, config = fallback_text, {}
    else:
        return None
    if isinstance(body, str):
        return ManagedPrompt(name=name, version=None, label=None, prompt=body, config=config, is_fallback=True)
    return ManagedPrompt(name=name, version=None, label=None, prompt=body, config=config, is_fallback=True, type="chat")


async def load_judge_prompt(
    name: str,
    *,
    label: str,
    fallback_file: Path | None,
    fallback_text: str | None = None,
    settings: Settings,
    shared: dict[str, Any],
) -> JudgePrompt:
    """Langfuse when configured (falling back to the file if unreachable), else the file alone."""
    fallback = _fallback_prompt(name, fallback_file, fallback_text)
    if not langfuse_configured(settings):
        if fallback is None:
            raise ConfigError(
                f"judge prompt '{name}': Langfuse is not configured (LANGFUSE_PUBLIC_KEY/SECRET_KEY) "
                "and there is no local fallback prompt"
            )
        return JudgePrompt(fallback, local_version(fallback.prompt, fallback.config))
    manager = shared_manager(settings, shared)
    managed = await manager.aget(name, label=label, fallback=fallback.prompt if fallback else None)
    if managed.is_fallback:
        log.warning("judge prompt %r: not available from Langfuse, using the local fallback", name)
        local = fallback or managed  # ours carries the file's config (its declared scale)
        return JudgePrompt(local, local_version(local.prompt, local.config))
    return JudgePrompt(managed, str(managed.version))


def load_judge_prompt_sync(
    name: str, *, fallback_file: Path | None, fallback_text: str | None = None
) -> JudgePrompt | None:
    """The local prompt only (for provenance before `setup`): None when there is none."""
    fallback = _fallback_prompt(name, fallback_file, fallback_text)
    return JudgePrompt(fallback, local_version(fallback.prompt, fallback.config)) if fallback else None
