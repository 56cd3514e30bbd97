"""Load a monitor config: bytes -> UTF-8 -> YAML -> secret scan -> `--set` overrides -> ${ENV} -> validation.

Every failure is a ConfigError naming the file and the field path (and the valid choices where
there is a list), raised before any work is done: unreadable or binary files, YAML the parser
refuses, values out of range and numbers that are not finite (NaN, infinity) included.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from shared.errors import ConfigError
from shared.monitoring.config import (
    SECRET_KEY_PATTERN,
    SECRET_VALUE_PATTERN,
    MonitorConfig,
    find_config,
    model_at,
    reject_ignored_overrides,
)
from shared.registry import did_you_mean

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class LoadedConfig:
    config: MonitorConfig
    path: Path


def load_monitor_config(
    name_or_path: str | Path, overrides: Sequence[str] = (), *, env: Mapping[str, str] | None = None
) -> LoadedConfig:
    """DATAFLOW: path -> text (UTF-8) -> YAML tree (${VAR} masked while parsing) -> secret scan
    -> --set overrides -> secret scan -> ${VAR} interpolation -> MonitorConfig -> finite numbers."""
    path = find_config(str(name_or_path))
    file = str(path)
    raw = parse_yaml(read_config_text(path), file=file)
    if not isinstance(raw, dict):
        raise ConfigError("a monitor config must be a mapping of keys (monitor, source, metrics, ...)", file=file)
    try:
        reject_inline_secrets(raw)
        for override in overrides:
            apply_override(raw, override)
        reject_inline_secrets(raw)
        expanded = interpolate(raw, os.environ if env is None else env)
        config = validate(expanded)
        reject_non_finite(config)
        reject_ignored_overrides(config, overrides)
    except ConfigError as exc:
        raise exc.with_file(file) from None
    return LoadedConfig(config=config, path=path)


def read_config_text(path: Path) -> str:
    """The file as text; a directory, an unreadable file or a binary one is a ConfigError."""
    file = str(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", file=file) from None
    try:
        text = data.decode("utf-8-sig")  # a BOM left by an editor is harmless
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not a UTF-8 text file (byte 0x{data[exc.start]:02x} at offset {exc.start}); a config is YAML text",
            file=file,
        ) from None
    if "\x00" in text:
        raise ConfigError(
            f"not a text file (NUL byte at offset {text.index(chr(0))}); a config is YAML text", file=file
        )
    return text


def parse_yaml(text: str, *, file: str) -> Any:
    """YAML -> plain data. `${VAR}` references are masked while parsing, so they may stand
    wherever YAML allows a scalar, flow mappings and sequences (`{a: ${X}}`, `[${X}]`) included."""
    masked, mask = mask_env_refs(text)
    try:
        return mask.restore(yaml.safe_load(masked))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML: {mask.restore(problem)}", file=file, field=where) from None
    except RecursionError:
        raise ConfigError("malformed YAML: nested too deeply", file=file) from None
    except (ValueError, OverflowError) as exc:  # e.g. a timestamp like 2024-13-45 fails to construct
        raise ConfigError(f"malformed YAML value: {mask.restore(str(exc))}", file=file) from None


def mask_env_refs(text: str) -> tuple[str, EnvRefMask]:
    """Swap each `${...}` for a token that is a plain scalar in any YAML context."""
    mask = EnvRefMask(prefix=f"evalmon_env_ref_{secrets.token_hex(6)}_", refs=[])

    def swap(match: re.Match[str]) -> str:
        mask.refs.append(match.group(0))
        return f"{mask.prefix}{len(mask.refs) - 1}_"

    return ENV_REF.sub(swap, text), mask


@dataclass(frozen=True)
class EnvRefMask:
    """The `${...}` references taken out of a YAML text, and the prefix of the tokens standing for them."""

    prefix: str
    refs: list[str]

    def restore(self, node: Any) -> Any:
        """Put the references back into every string (keys too) of a parsed tree or a message."""
        if not self.refs:
            return node
        if isinstance(node, dict):
            return {self.restore(k): self.restore(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.restore(v) for v in node]
        if isinstance(node, str) and self.prefix in node:
            return re.sub(rf"{self.prefix}(\d+)_", lambda m: self.refs[int(m.group(1))], node)
        return node


def reject_non_finite(node: Any, path: str = "") -> None:
    """NaN and infinity compare false with everything: a threshold of NaN fails every item, a budget
    of NaN never stops. Any non-finite number anywhere in a validated config is a ConfigError."""
    if isinstance(node, BaseModel):
        fields = {name: getattr(node, name) for name in type(node).model_fields}
        node = {**fields, **(node.model_extra or {})}
    if isinstance(node, dict):
        for key, value in node.items():
            reject_non_finite(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            reject_non_finite(value, f"{path}.{index}")
    elif isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{node} is not a usable number; give a finite value", field=path or None)


def validate(data: dict[str, Any]) -> MonitorConfig:
    try:
        return MonitorConfig.model_validate(data)
    except ValidationError as exc:
        raise pydantic_to_config_error(exc) from None


def pydantic_to_config_error(exc: ValidationError) -> ConfigError:
    errors = exc.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    field = ".".join(str(p) for p in loc) or None
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    if first["type"] == "extra_forbidden":
        model = model_at(loc[:-1])
        choices = list(model.model_fields) if model is not None else None
        hint = did_you_mean(str(loc[-1]), choices or [])
        return ConfigError(f"unknown key{hint}{more}", field=field, choices=choices)
    if first["type"] == "literal_error":
        expected = str(first.get("ctx", {}).get("expected", ""))
        choices = [c.strip().strip("'") for c in re.split(r",| or ", expected) if c.strip()]
        hint = did_you_mean(str(first.get("input")), choices)
        return ConfigError(f"invalid value {first.get('input')!r}{hint}{more}", field=field, choices=choices)
    if first["type"] == "missing":
        return ConfigError(f"required key is missing{more}", field=field)
    message = first["msg"].removeprefix("Value error, ")
    return ConfigError(f"{message}{more}", field=field)


def reject_inline_secrets(node: Any, path: str = "") -> None:
    """Secrets come from the environment only (architecture.md section 7); a literal one is an error."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if (
                isinstance(value, str)
                and value.strip()
                and SECRET_KEY_PATTERN.search(str(key))
                and not ENV_REF.fullmatch(value.strip())
            ):
                raise ConfigError(
                    "inline secrets are not accepted in YAML; set the value in the environment (or .env) instead",
                    field=here,
                )
            reject_inline_secrets(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            reject_inline_secrets(value, f"{path}.{index}")
    elif isinstance(node, str) and SECRET_VALUE_PATTERN.search(node):
        raise ConfigError(
            "this value looks like a secret (API key, token or password URL); keep secrets in the environment",
            field=path or None,
        )


def interpolate(node: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in strings; types are applied later by validation."""
    if isinstance(node, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env, f"{path}.{i}") for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name} is not set (use ${{{name}:-default}} for a default)", field=path
        )

    return ENV_REF.sub(replace, node)


def apply_override(raw: dict[str, Any], override: str) -> None:
    """`--set path.to.field=value`; the value is parsed as YAML (so 5 is an int, true a bool)."""
    path, sep, text = override.partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"--set expects path=value, got '{override}'", field="--set")
    masked, mask = mask_env_refs(text)  # `--set 'source.tags=[${TAG}]'` parses like the file does
    try:
        value = mask.restore(yaml.safe_load(masked)) if text.strip() else ""
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError):  # not YAML (2026-13-45): the text itself
        value = text
    parts = path.strip().split(".")
    node: Any = raw
    for index, part in enumerate(parts[:-1]):
        nxt = parts[index + 1]
        if isinstance(node, list):
            if not part.isdigit() or int(part) > len(node):
                raise ConfigError(f"no list element {part}", field=".".join(parts[: index + 1]))
            if int(part) == len(node):  # `metrics.<len>.key=...` appends an element
                node.append([] if nxt.isdigit() else {})
            node = node[int(part)]
            continue
        if not isinstance(node.get(part), dict | list):
            node[part] = [] if nxt.isdigit() else {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) > len(node):
            raise ConfigError(f"no list element {last}", field=path)
        if int(last) == len(node):
            node.append(value)
        else:
            node[int(last)] = value
    elif isinstance(node.get(last), dict) and isinstance(value, bool) and last in ("postgres", "langfuse"):
        node[last] = {**node[last], "enabled": value}
    else:
        node[last] = value
