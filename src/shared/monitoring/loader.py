"""Load a monitor config: YAML -> secret scan -> `--set` overrides -> ${ENV} -> validation.

Every failure is a ConfigError naming the file and the field path (and the valid choices where
there is a list), raised before any work is done.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.errors import ConfigError
from shared.monitoring.config import (
    SECRET_KEY_PATTERN,
    SECRET_VALUE_PATTERN,
    MonitorConfig,
    find_config,
    model_at,
)

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class LoadedConfig:
    config: MonitorConfig
    path: Path


def load_monitor_config(
    name_or_path: str | Path, overrides: Sequence[str] = (), *, env: Mapping[str, str] | None = None
) -> LoadedConfig:
    path = find_config(str(name_or_path))
    file = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML: {problem}", file=file, field=where) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", file=file) from None
    if not isinstance(raw, dict):
        raise ConfigError("a monitor config must be a mapping of keys (monitor, source, metrics, ...)", file=file)
    try:
        reject_inline_secrets(raw)
        for override in overrides:
            apply_override(raw, override)
        reject_inline_secrets(raw)
        expanded = interpolate(raw, os.environ if env is None else env)
        config = validate(expanded)
    except ConfigError as exc:
        raise exc.with_file(file) from None
    return LoadedConfig(config=config, path=path)


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
        return ConfigError(f"unknown key{more}", field=field, choices=choices)
    if first["type"] == "literal_error":
        expected = str(first.get("ctx", {}).get("expected", ""))
        choices = [c.strip().strip("'") for c in re.split(r",| or ", expected) if c.strip()]
        return ConfigError(f"invalid value {first.get('input')!r}{more}", field=field, choices=choices)
    if first["type"] == "missing":
        return ConfigError(f"required key is missing{more}", field=field)
    message = first["msg"].removeprefix("Value error, ")
    return ConfigError(f"{message}{more}", field=field)


def reject_inline_secrets(node: Any, path: str = "") -> None:
    """Secrets come from the environment only (DESIGN.md section 7); a literal one is an error."""
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
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
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
