"""The monitors the GitHub Actions cron runs, each with the ledger file it carries from run to run.

`.github/workflows/monitoring.yml` runs `evalmon cron-matrix` and turns its JSON into a job matrix:
one job per config, each in its own concurrency group and with its own ledger cache. A config is in
the cron when its `schedule` block says `github_actions: true`; the ledger path is the config's
`dedup.path` (a Postgres ledger, or none, needs no cache), and the alert incident state file beside it. Nothing here is hard-coded per monitor,
so a new monitor joins the cron by setting the flag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ConfigError
from shared.monitoring.config import alert_state_path, bundled_configs, config_root, find_config, resolve_path
from shared.monitoring.loader import load_monitor_config


@dataclass(frozen=True)
class CronEntry:
    """One job of the workflow's matrix."""

    name: str  # the config's file stem: job name, concurrency group and cache key
    config: str  # the config file, relative to the working directory when inside it
    monitor: str
    # the CSV ledger to restore before and save after the run, relative to the working directory when
    # inside it (as actions/cache wants); "" when there is none
    ledger: str
    alert_state: str  # the alert incident state file carried beside it; "" when there is none


def cron_entries(
    configs: Sequence[str] = (),
    *,
    base_dir: Path | None = None,
    search_root: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> list[CronEntry]:
    """The entries of `configs`, or, when none are given, of every bundled config marked for the cron.

    DATAFLOW: names -> config paths (find_config / bundled_configs) -> load_monitor_config (schema
    only: no plug-in import, no source) -> marked ones (unless named) -> CronEntry with dedup.path
    resolved as the run resolves it (against the config's repository root, config_root) and given
    relative to `base_dir` (the workspace: the current directory unless given).
    Every config is validated, so a broken config fails the planning job in one line (exit 2)
    rather than dropping silently out of the cron.
    """
    base = (base_dir or Path.cwd()).resolve()
    paths = (
        [find_config(name, search_root=search_root) for name in configs]
        if configs
        else bundled_configs(search_root=search_root)
    )
    entries: list[CronEntry] = []
    for path in paths:
        config = load_monitor_config(path, env=env).config
        if not configs and not (config.schedule and config.schedule.github_actions):
            continue
        root = config_root(path)
        ledger = resolve_path(config.dedup.path, root) if config.dedup.store == "csv" else None
        has_alerts = bool(config.alerts.rules)  # without DATABASE_URL, incidents live in this file
        entries.append(
            CronEntry(
                name=path.stem,
                config=_relative(path, base),
                monitor=config.monitor,
                ledger=_relative(ledger, base) if ledger is not None else "",
                alert_state=_relative(resolve_path(alert_state_path(config), root), base) if has_alerts else "",
            )
        )
    _reject_shared_names(entries)
    return entries


def _relative(path: Path, base: Path) -> str:
    """`path` relative to `base` when it lies inside it, else absolute."""
    absolute = path if path.is_absolute() else base / path
    try:
        return absolute.resolve().relative_to(base).as_posix()
    except ValueError:
        return str(absolute)


def _reject_shared_names(entries: Sequence[CronEntry]) -> None:
    """Two jobs with one name would share a concurrency group and a cache; two monitors of one name
    would share ledger rows and Langfuse score ids."""
    for field in ("name", "monitor"):
        seen: dict[str, str] = {}
        for entry in entries:
            value = getattr(entry, field)
            if value in seen:
                raise ConfigError(
                    f"{seen[value]} and {entry.config} both have the {field} '{value}'; the cron needs one per config",
                    field="monitor" if field == "monitor" else None,
                )
            seen[value] = entry.config
