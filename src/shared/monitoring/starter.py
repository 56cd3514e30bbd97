"""`evalmon init`: a commented starter config whose extractor_fields were found on sampled traces.

The fields come from `shared.monitoring.proposal` (what `evalmon inspect --propose` prints); the
file is written only once it loads as a monitor, so `evalmon validate` accepts what init wrote.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.errors import ConfigError, EvalmonError
from shared.monitoring.inspection import collect_sample
from shared.monitoring.proposal import Proposal, propose_fields, yaml_scalar
from shared.monitoring.window import iso, resolve_window
from shared.settings import Settings
from shared.traces import Trace

STARTER_METRICS = ("non_empty", "pii_leakage", "refusal")


# -- starter config ------------------------------------------------------------------------
def monitor_name(trace_name: str | None, fallback: str) -> str:
    """A valid monitor name (letters, digits, `_.-`, at most 80) from a trace name."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", trace_name or fallback).strip("-._") or "monitor"
    return base[:80]


def starter_config(
    *,
    source: dict[str, Any],
    monitor: str,
    proposal: Proposal,
    sampled: str,
    path: str = "THIS_FILE",
    unfiltered_trace_name: str | None = None,
) -> str:
    """A commented starter config: the sampled source, the proposed fields, cheap heuristic metrics."""
    lines = [
        f"# Starter monitor written by `evalmon init` from {sampled}.",
        "# Before trusting its numbers, look at what it extracts, trace by trace:",
        f"#   evalmon inspect {path}              (add --propose to re-derive extractor_fields)",
        f"#   evalmon validate --sample {path}    (the extraction warnings, before a first run)",
        f"monitor: {yaml_scalar(monitor)}",
        f"description: {yaml_scalar('Starter monitor from evalmon init; describe what it watches.')}",
        "",
        "source:",
    ]
    for key, value in source.items():
        lines.append(f"  {key}: {yaml_scalar(value)}")
    if source.get("type") == "langfuse":
        lines += [
            "  # tags: [production]                 # only traces carrying these tags",
            "  # environment: [production]          # only these environments",
            "",
            "# Each run reads [now - 70 min, now - 10 min]: hourly runs overlap and the ledger skips what",
            "# was scored already; the 10 minutes let slow traces finish before they are read.",
            "window:",
            "  lookback_minutes: 70",
            "  settle_minutes: 10",
        ]
    else:
        if unfiltered_trace_name:
            lines.append(
                f"  # this file source cannot filter by trace name: every trace is read, not only {unfiltered_trace_name!r}"
            )
        lines += ["", "# A file is read whole unless a run gets --since/--until."]
    lines += [
        "",
        "# `default` reads the fields below; a field not listed falls back to the default extractor.",
        "extractor: default",
        "# Proposed from the sampled traces (`evalmon inspect --propose`): where each field comes from.",
        *proposal.yaml_block().splitlines(),
        "",
        "sampling:",
        "  strategy: random                     # at most n new items per run, seeded",
        "  n: 100",
        "  seed: 7",
        "",
        "metrics:",
    ]
    notes = {
        "non_empty": "the answer is there",
        "pii_leakage": "no e-mail, phone, card or SSN in the answer",
        "refusal": "the answer does not refuse",
    }
    for key in STARTER_METRICS:
        lines.append(f"  - key: {key:<30} # {notes[key]}")
    if "retrieved_content" in proposal.fields:
        lines.append(f"  - key: {'citation_validity':<30} # every [n] names a retrieved document")
    else:
        lines.append("  # - key: citation_validity            # needs retrieved_content (documents)")
    lines += [
        "  - key: latency",
        "    params:",
        "      max_seconds: 30",
        "",
        "dedup:",
        "  store: csv",
        "  path: data/scored_items.csv",
        "",
        "publish:",
        "  local:",
        "    dir: data/runs",
        "  langfuse: false                      # true: write the scores back onto the traces",
        "",
    ]
    return "\n".join(lines)


@dataclass
class InitResult:
    path: Path
    proposal: Proposal
    sampled: int


def init_config(
    *,
    source_type: str,
    out: Path,
    trace_name: str | None = None,
    path: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    lookback_hours: float = 24.0,
    limit: int = 20,
    force: bool = False,
    settings: Settings | None = None,
    base_dir: Path | None = None,
) -> InitResult:
    """DATAFLOW: flags -> source (langfuse or file) -> sample of traces (window: --since/--until or the
    last `lookback_hours`) -> propose_fields -> starter YAML -> loaded as a monitor (must be valid)
    -> written atomically to `out`."""
    from shared.monitoring.config import config_root
    from shared.monitoring.monitor import OnlineMonitor
    from shared.monitoring.sources.base import build_source, source_registry
    from shared.settings import load_settings

    base_dir = base_dir or Path.cwd()
    if source_type not in ("langfuse", "file"):
        raise ConfigError(f"unknown source '{source_type}'", field="--source", choices=["file", "langfuse"])
    if source_type == "langfuse" and not trace_name:
        raise ConfigError("name the traces to monitor", field="--trace-name")
    if source_type == "file" and not path:
        raise ConfigError("name the trace file", field="--path")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists (use --force to replace it)", field="--out")
    params: dict[str, Any] = {"path": path} if source_type == "file" else {}
    filter_locally = False
    if trace_name:
        params_model = source_registry.resolve(source_type).Params
        if "trace_name" in params_model.model_fields:
            params["trace_name"] = trace_name
        else:
            filter_locally = True
    source = build_source(source_type, params, settings=settings or load_settings(), base_dir=base_dir)
    window = resolve_window(lookback_minutes=lookback_hours * 60, settle_minutes=0, since=since, until=until)
    sample = asyncio.run(collect_sample(source, window, limit if not filter_locally else 10 * limit))
    traces = [r for r in sample.records if isinstance(r, Trace)]
    if filter_locally:
        traces = [t for t in traces if t.name == trace_name][:limit]
    named = f" named {trace_name!r}" if trace_name else ""
    if not traces:
        if source_type == "file":
            raise EvalmonError(f"no traces{named} in the file {path}; nothing written")
        raise EvalmonError(
            f"no traces{named} in Langfuse between {iso(window.since)} and {iso(window.until)}; nothing written "
            "(widen the window with --since or --lookback-hours)"
        )
    proposal = propose_fields(traces)
    sampled = f"{len(traces)} trace(s){named} ({source.source_key}, read {iso(window.since)} .. {iso(window.until)})"
    if source_type == "file":
        sampled = f"{len(traces)} trace(s){named} of {path}"
    if path:  # the config reads it against its own repository root, not today's working directory
        params["path"] = _as_config_path(base_dir / path, config_root(out))
    text = starter_config(
        source={"type": source_type, **params},
        monitor=monitor_name(trace_name, Path(path or "monitor").stem),
        proposal=proposal,
        sampled=sampled,
        path=str(out),
        unfiltered_trace_name=trace_name if filter_locally else None,
    )
    _write_checked(text, out, OnlineMonitor)
    return InitResult(out, proposal, len(traces))


def _as_config_path(path: Path, root: Path) -> str:
    """`path` as a config writes it: relative to the config's root when inside it, else absolute."""
    absolute = path.resolve()
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return str(absolute)


def _write_checked(text: str, out: Path, monitor_cls: Any) -> None:
    """Write `text` to `out` only once it loads as a monitor (what `evalmon validate` checks)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".yaml", dir=out.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        monitor_cls.from_yaml(temp)  # paths resolve as they will for `out` (same folder)
        os.replace(temp, out)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
