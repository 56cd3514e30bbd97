"""The `evalmon` command (architecture.md section 7).

Exit codes: 0 ok (also when nothing was new), 1 the run failed or partly failed, 2 usage or
config error. `--json` prints only the RunSummary on stdout; logs and progress go to stderr.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.errors import ConfigError, EvalmonError
from shared.logs import configure_logging
from shared.process import tune_gc

app = typer.Typer(
    name="evalmon",
    help="Score the production behaviour of LLM applications on a schedule.",
    epilog="Example: evalmon run monitoring_local (then: evalmon runs list)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ledger_app = typer.Typer(help="Inspect and maintain the CSV ledger of scored items.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
runs_app = typer.Typer(help="List and prune run folders (results, summary.json, reports).", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
from shared.langfuse.webhook_cli import webhook_app  # noqa: E402

app.add_typer(webhook_app, name="webhook")
from shared.database.cli import db_app  # noqa: E402

app.add_typer(db_app, name="db")

out = Console(soft_wrap=True)
err = Console(stderr=True)
_state: dict[str, bool] = {"debug": False}

T = TypeVar("T")


def guarded(action: Callable[[], T]) -> T:
    """Run a command body: config errors exit 2 in one line, other failures exit 1.

    Tracebacks only with --debug, which adds detail and never changes the exit code: users see
    what to fix, not our internals.
    """
    try:
        return action()
    except ConfigError as exc:
        report_config_error(exc)
        raise typer.Exit(2) from None
    except EvalmonError as exc:
        _traceback_if_debug()
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        # Safe at any point: the ledger is written last, so unfinished work is redone next run.
        err.print("[yellow]interrupted:[/yellow] nothing unfinished was recorded; the next run redoes it")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        _traceback_if_debug()
        hint = "" if _state["debug"] else " (rerun with --debug for a traceback)"
        err.print(f"[red]unexpected error:[/red] {type(exc).__name__}: {exc}{hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def report_config_error(exc: ConfigError) -> None:
    """One line on stderr (after the traceback with --debug); call inside the `except`."""
    _traceback_if_debug()
    err.print(f"[red]config error:[/red] {exc.one_line()}", highlight=False, soft_wrap=True)


def _traceback_if_debug() -> None:
    if _state["debug"]:
        traceback.print_exc(file=sys.stderr)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
) -> None:
    _state["debug"] = debug
    configure_logging(verbose=verbose or debug, quiet=quiet)
    tune_gc()


def parse_time_option(value: str | None, name: str) -> Any:
    if value is None:
        return None
    from shared.monitoring.window import parse_iso

    return parse_iso(value, field=name)


@app.command(epilog="Example: evalmon run monitoring_local --dry-run --limit 20")
def run(
    config: Annotated[str, typer.Argument(help="Config file, or a bare name under src/implementations/*/config/.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Fetch, sample and evaluate; publish, record and write nothing.")
    ] = False,
    keep_results: Annotated[
        bool, typer.Option("--keep-results", help="With --dry-run: still write the run folder (results, reports).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the RunSummary JSON on stdout.")] = False,
    since: Annotated[str | None, typer.Option(help="Window start, ISO 8601 (UTC if no offset).")] = None,
    until: Annotated[str | None, typer.Option(help="Window end, ISO 8601.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many new items this run.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config field: path=value.")] = None,
) -> None:
    """Run a monitor once over its window."""

    def body() -> int:
        from shared.monitoring.monitor import OnlineMonitor
        from shared.monitoring.progress import make_reporter

        monitor = OnlineMonitor.from_yaml(config, overrides=set_ or [])
        summary = monitor.run(
            since=parse_time_option(since, "--since"),
            until=parse_time_option(until, "--until"),
            dry_run=dry_run,
            limit=limit,
            reporter=make_reporter(),
            keep_results=True if keep_results else None,
        )
        if as_json:
            sys.stdout.write(summary.model_dump_json(indent=2) + "\n")
        else:
            print_summary(summary)
        return summary.exit_code()

    raise typer.Exit(guarded(body))


def table_width(table: Table) -> int:
    """The width a table needs to show every cell whole."""
    from rich.console import Console as Measurer

    measured = Measurer(width=10_000).measure(table)
    return int(measured.maximum)


def print_summary(summary: Any) -> None:
    """The human view of a RunSummary."""
    c = summary.counts
    colour = {"ok": "green", "dry_run": "cyan", "partial": "yellow", "failed": "red"}[summary.status]
    out.print(f"[bold]{summary.monitor}[/bold]  run {summary.run_id}  [{colour}]{summary.status}[/{colour}]")
    if summary.window.get("applied", True):
        out.print(f"window {summary.window['since']} .. {summary.window['until']}")
    else:
        out.print("window: all records of the file (file sources filter only with --since/--until)")
    out.print(
        f"fetched {c.fetched}  invalid {c.invalid}  already scored {c.duplicates}  "
        + (f"claimed by another worker {c.claimed_elsewhere}  " if c.claimed_elsewhere else "")
        + f"sampled {c.sampled}  evaluated {c.evaluated}  metric errors {c.metric_errors}  recorded {c.recorded}"
        + (f"  published postgres {c.published_postgres}" if c.published_postgres else "")
        + (f"  published langfuse {c.published_langfuse}" if c.published_langfuse else "")
        + ("  (more available: raise --limit)" if c.more_available else "")
    )
    if summary.estimate:
        out.print(
            f"judge calls planned {summary.estimate.judge_calls}, estimated cost ${summary.estimate.cost_usd:.4f}"
        )
        for name, planned in summary.estimate.by_metric.items():
            out.print(f"  {name}: {planned.judge_calls} calls, ${planned.cost_usd:.4f}", highlight=False)
    if summary.metrics:
        from shared.evaluation.metric import direction_label

        table = Table("metric", "direction", "n", "mean", "pass rate", "errors", "skipped")
        for column in table.columns:
            column.no_wrap = True
        for name, m in summary.metrics.items():
            table.add_row(
                name,
                direction_label(m.direction, m.score_type),
                str(m.n),
                "-" if m.mean is None else f"{m.mean:.3f}",
                "-" if m.pass_rate is None else f"{m.pass_rate:.1%}",
                str(m.errors),
                str(m.skipped),
            )
        # a pipe or a CI log has no width: never crop metric names to the 80 columns rich assumes
        wide = out if out.is_terminal else Console(width=max(out.width, table_width(table)))
        wide.print(table)
    elif c.sampled == 0:
        out.print("nothing new to score")
    for alert in summary.alerts:
        out.print(f"[yellow]alert:[/yellow] {alert.get('message', alert)}")
    if summary.cost_usd:
        out.print(f"cost ${summary.cost_usd:.4f}")
    for error in summary.errors:
        out.print(f"[red]error:[/red] {error}", highlight=False)
    for warning in summary.warnings:
        out.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    if summary.results_dir:
        from shared.monitoring.sinks.local import how_to_open

        out.print(f"results: {summary.results_dir}")
        out.print(f"  {escape(how_to_open(summary.results_dir))}", highlight=False)
    elif summary.status == "dry_run" and c.sampled:
        out.print("results: not kept (a dry run writes no run folder; add --keep-results to keep one)")
    else:
        out.print("results: none (nothing was scored, so no run folder)")


@app.command(epilog="Example: evalmon validate monitoring_local --sample")
def validate(
    configs: Annotated[list[str], typer.Argument(help="Config files or bare names.")],
    sample: Annotated[
        bool, typer.Option("--sample", help="Also extract a sample from the source and print extraction warnings.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="Records read with --sample.")] = 50,
    since: Annotated[str | None, typer.Option(help="With --sample: window start, ISO 8601.")] = None,
    until: Annotated[str | None, typer.Option(help="With --sample: window end, ISO 8601.")] = None,
) -> None:
    """Check configs: schema, plug-ins, metrics, extractor; with --sample, the extraction on real records."""
    from shared.monitoring.monitor import OnlineMonitor

    codes = [0]
    for name in configs:
        try:
            monitor = guarded(functools.partial(OnlineMonitor.from_yaml, name))
            guarded(functools.partial(check_local_paths, monitor))
        except typer.Exit as exc:  # reported in one line; go on with the next config
            codes.append(exc.exit_code)
            continue
        out.print(f"ok  {monitor.name}  ({monitor.config_path}; {len(monitor.metrics)} metrics)", highlight=False)
        if sample:
            try:
                guarded(functools.partial(print_sample_check, monitor, since, until, limit))
            except typer.Exit as exc:
                codes.append(exc.exit_code)
    raise typer.Exit(max(codes))


def check_local_paths(monitor: Any) -> None:
    """The files `run` would read (the trace file, metric params named `*file`), resolved as `run`
    resolves them (against the config's repository root), so validate never passes a config that
    `run` then fails, from any directory."""
    from shared.monitoring.config import resolve_path

    config_file = str(monitor.config_path) if monitor.config_path else None
    rule = f"relative paths resolve against {monitor.base_dir}, the config's repository root or folder"
    file = getattr(monitor.source, "file", None)
    if isinstance(file, Path) and not file.is_file():
        raise ConfigError(f"trace file not found: {file} ({rule})", field="source.path", file=config_file)
    for index, metric in enumerate(monitor.metrics):
        for param, value in metric.params.model_dump().items():
            if param.endswith("file") and isinstance(value, str) and value:
                path = resolve_path(value, monitor.base_dir)
                if not path.is_file():
                    raise ConfigError(
                        f"file not found: {path} ({rule})", field=f"metrics.{index}.params.{param}", file=config_file
                    )


def print_sample_check(monitor: Any, since: str | None, until: str | None, limit: int) -> None:
    """`validate --sample`: how the extraction went on a sample, and its item-level warnings."""
    from shared.monitoring.inspection import check_sample

    check = check_sample(
        monitor, since=parse_time_option(since, "--since"), until=parse_time_option(until, "--until"), limit=limit
    )
    window = f"{check.window['since']} .. {check.window['until']}" if check.window["applied"] else "the whole file"
    out.print(
        f"    sample of {window}: {check.records} record(s), {check.items} item(s) extracted, "
        f"{len(check.failed)} failed, {len(check.invalid)} unreadable",
        highlight=False,
    )
    for failure in check.failed[:5]:
        out.print(f"    [red]extraction failed:[/red] {escape(failure)}", highlight=False)
    for warning in check.warnings:
        out.print(f"    [yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    if check.records and not check.warnings and not check.failed:
        out.print("    no extraction warnings", highlight=False)


@app.command(epilog="Example: evalmon inspect monitoring_langfuse --limit 10 --propose")
def inspect(
    config: Annotated[str, typer.Argument(help="Config file, or a bare name under src/implementations/*/config/.")],
    since: Annotated[str | None, typer.Option(help="Window start, ISO 8601 (UTC if no offset).")] = None,
    until: Annotated[str | None, typer.Option(help="Window end, ISO 8601.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Records to read.")] = 20,
    propose: Annotated[
        bool, typer.Option("--propose", help="Also propose extractor_fields for the answer, query and context.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the inspection as JSON on stdout.")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config field: path=value.")] = None,
) -> None:
    """Show the trace shape and what the extractor reads from a sample, before trusting a score."""

    def body() -> None:
        from shared.monitoring.inspection import inspect_monitor, render
        from shared.monitoring.monitor import OnlineMonitor

        monitor = OnlineMonitor.from_yaml(config, overrides=set_ or [])
        inspection = inspect_monitor(
            monitor,
            since=parse_time_option(since, "--since"),
            until=parse_time_option(until, "--until"),
            limit=limit,
            propose=propose,
        )
        if as_json:
            sys.stdout.write(json.dumps(inspection.as_dict(), indent=2, default=str) + "\n")
        else:
            render(inspection, out)

    guarded(body)


@app.command(epilog="Example: evalmon init --source langfuse --trace-name chat --out chat.yaml")
def init(
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the starter config.")],
    source: Annotated[str, typer.Option(help="Where the traces are: langfuse or file.")] = "langfuse",
    trace_name: Annotated[str | None, typer.Option(help="Only traces with this name (required for langfuse).")] = None,
    path: Annotated[str | None, typer.Option(help="The trace file (--source file).")] = None,
    since: Annotated[str | None, typer.Option(help="Sample window start, ISO 8601.")] = None,
    until: Annotated[str | None, typer.Option(help="Sample window end, ISO 8601.")] = None,
    lookback_hours: Annotated[float, typer.Option(min=0.01, help="Without --since: sample this far back.")] = 24.0,
    limit: Annotated[int, typer.Option(min=1, help="Traces to sample.")] = 20,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
) -> None:
    """Write a commented starter config whose extractor_fields were found on sampled traces."""

    def body() -> None:
        from shared.monitoring.starter import init_config

        result = init_config(
            source_type=source,
            out=out_file,
            trace_name=trace_name,
            path=path,
            since=parse_time_option(since, "--since"),
            until=parse_time_option(until, "--until"),
            lookback_hours=lookback_hours,
            limit=limit,
            force=force,
        )
        out.print(f"wrote {result.path} from {result.sampled} sampled trace(s)", highlight=False)
        for name, choice in result.proposal.fields.items():
            out.print(f"  {name}: {choice.path}  ({escape(choice.note())})", highlight=False)
        for name, why in result.proposal.missing.items():
            out.print(f"  {name}: [yellow]not found[/yellow] ({escape(why)})", highlight=False)
        out.print(f"next: evalmon inspect {result.path}", highlight=False)

    guarded(body)


@app.command(epilog="Example: evalmon report monitoring_local --every day --by environment")
def report(
    monitor: Annotated[str, typer.Argument(help="Monitor config (file or bare name), or a monitor name.")],
    since: Annotated[str | None, typer.Option(help="Runs whose window ends at or after this (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="... and before this.")] = None,
    by: Annotated[
        str | None, typer.Option(help="Break down by an item field: environment, tags, model, prompt_version, ...")
    ] = None,
    every: Annotated[str, typer.Option(help="One point per run, hour or day.")] = "run",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for report.html and the PNG charts.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON instead.")] = False,
) -> None:
    """Trends over runs: each metric per run (or hour, day) with interval bands, volume, alerts."""

    def body() -> int:
        from shared.reporting.trends import build_trends, write_trend_report
        from shared.settings import load_settings

        if every not in ("run", "hour", "day"):
            raise ConfigError(f"unknown --every '{every}'", field="--every", choices={"run", "hour", "day"})
        name, runs_dir, implementation_dir = _monitor_and_runs(monitor)
        trends = build_trends(
            name,
            since=parse_time_option(since, "--since"),
            until=parse_time_option(until, "--until"),
            every=every,  # type: ignore[arg-type]
            by=by,
            settings=load_settings(implementation_dir),
            runs_dir=runs_dir,
        )
        if as_json:
            sys.stdout.write(json.dumps(trends.as_dict(), indent=2) + "\n")
            return 0
        written = write_trend_report(trends, out_dir or Path("data/reports") / name)
        runs = sum(v.runs for v in trends.volume)
        out.print(f"{name}: {runs} run(s) from {trends.source}; report: {written[0]}", highlight=False)
        return 0

    raise typer.Exit(guarded(body))


@app.command(epilog="Example: evalmon calibrate monitoring_judge --human human_review")
def calibrate(
    config: Annotated[str, typer.Argument(help="Config file, or a bare name under src/implementations/*/config/.")],
    human: Annotated[str, typer.Option("--human", help="Name of the human score in Langfuse (any source).")],
    since: Annotated[str | None, typer.Option(help="Human labels given at or after this, ISO 8601.")] = None,
    until: Annotated[str | None, typer.Option(help="... and before this.")] = None,
    metric: Annotated[str | None, typer.Option(help="Only this metric.")] = None,
    judge_scores: Annotated[
        str, typer.Option("--judge-scores", help="auto (Postgres when DATABASE_URL is set), postgres or langfuse.")
    ] = "auto",
    human_threshold: Annotated[
        float | None, typer.Option(help="A human value at or past this passes (default: the metric's threshold).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config field: path=value.")] = None,
) -> None:
    """Does the judge agree with people? Kappa, correlations and the confusion matrix against human scores."""

    def body() -> None:
        import asyncio

        from shared.monitoring.calibration import calibrate_monitor, check_judge_source, inputs_of, render
        from shared.monitoring.monitor import OnlineMonitor

        window = parse_time_option(since, "--since"), parse_time_option(until, "--until")
        source = check_judge_source(judge_scores)
        monitor = OnlineMonitor.from_yaml(config, overrides=set_ or [])  # loaded, not run
        report = asyncio.run(
            calibrate_monitor(
                inputs_of(monitor),
                human,
                since=window[0],
                until=window[1],
                metric=metric,
                source=source,
                human_threshold=human_threshold,
            )
        )
        if as_json:
            sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        else:
            render(report, out)

    guarded(body)


def _monitor_and_runs(name_or_config: str) -> tuple[str, Path, Path | None]:
    """A config gives its monitor name and runs folder; anything else is a monitor name."""
    from shared.monitoring.config import NAME_PATTERN, config_root, resolve_path
    from shared.monitoring.loader import load_monitor_config

    try:
        loaded = load_monitor_config(name_or_config)
    except ConfigError:
        if not re.fullmatch(NAME_PATTERN, name_or_config):
            raise
        return name_or_config, Path("data/runs"), None
    parent = loaded.path.resolve().parent
    return (
        loaded.config.monitor,
        resolve_path(loaded.config.publish.local.dir, config_root(loaded.path)),
        parent.parent if parent.name == "config" else None,
    )


@app.command(epilog="Example: evalmon metrics --plugin implementations.athena.metrics")
def metrics(
    plugin: Annotated[
        list[str] | None,
        typer.Option("--plugin", help="Also import this module (e.g. implementations.athena.metrics)."),
    ] = None,
    config: Annotated[str | None, typer.Option(help="Also load the plug-ins this config names.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the registered metrics."""

    def body() -> None:
        import importlib

        from shared.evaluation.metric import load_builtin_metrics, metric_registry

        load_builtin_metrics()
        modules = list(plugin or [])
        if config:
            from shared.monitoring.loader import load_monitor_config

            modules += load_monitor_config(config).config.plugins
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ConfigError(f"cannot import '{module}' ({exc})", field="--plugin") from None
        rows: list[dict[str, Any]] = []
        for key in metric_registry:
            cls = metric_registry.resolve(key)
            rows.append(
                {
                    "key": key,
                    "kind": cls.kind,
                    "score_type": cls.score_type,
                    "direction": cls.direction,
                    "default_threshold": cls.default_threshold,
                    "required_fields": list(cls.required_fields),
                    "description": cls.description,
                    "params": sorted(cls.Params.model_fields),
                }
            )
        if as_json:
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
            return
        print_metric_list(rows, out)

    guarded(body)


def print_metric_list(rows: list[dict[str, Any]], console: Console) -> None:
    """One line per metric (key, kind, direction, threshold: grep-able), then its description and the
    fields it needs, wrapped and indented: fits the console's width, 80 columns in pipes and logs."""
    from rich.text import Text

    from shared.evaluation.metric import direction_label

    key_width = min(30, max((len(row["key"]) for row in rows), default=3))
    console.print(f"{'key':<{key_width}}  {'kind':<9}  {'direction':<16}  threshold", highlight=False, markup=False)
    for row in rows:
        threshold = "-" if row["default_threshold"] is None else f"{row['default_threshold']:g}"
        better = direction_label(row["direction"], row["score_type"])
        console.print(
            f"{row['key']:<{key_width}}  {row['kind']:<9}  {better:<16}  {threshold}", highlight=False, markup=False
        )
        needs = f" Needs: {', '.join(row['required_fields'])}." if row["required_fields"] else ""
        for line in Text(row["description"] + needs).wrap(console, max(20, console.width - 4)):
            line.rstrip()
            console.print(Text("    ") + line, style="dim", soft_wrap=True)


LedgerPath = Annotated[Path, typer.Option("--path", help="Ledger CSV file.")]


@ledger_app.command("stats", epilog="Example: evalmon ledger stats --path data/scored_items.csv")
def ledger_stats_cmd(path: LedgerPath = Path("data/scored_items.csv")) -> None:
    """Rows, unique keys, torn lines and rows per monitor."""
    from shared.monitoring.ledger.csv_store import ledger_stats

    stats = ledger_stats(path)
    out.print(
        f"{stats.path}: {stats.rows} rows, {stats.unique_keys} unique keys, {stats.torn_lines} torn line(s), {stats.bytes} bytes"
    )
    for monitor, rows in sorted(stats.per_monitor.items()):
        out.print(f"  {monitor}: {rows}")


@ledger_app.command("compact", epilog="Example: evalmon ledger compact --path data/scored_items.csv")
def ledger_compact_cmd(path: LedgerPath = Path("data/scored_items.csv")) -> None:
    """Drop duplicate and torn lines (atomic rewrite under the ledger lock)."""
    from shared.monitoring.ledger.csv_store import compact

    if not path.exists():
        err.print(f"no ledger at {path}")
        raise typer.Exit(2)
    before, after = compact(path)
    out.print(f"{path}: {before} -> {after} rows")


RunsTarget = Annotated[
    str | None,
    typer.Argument(metavar="[MONITOR]", help="A config (file or bare name) or a monitor name; default: every monitor."),
]
RunsDir = Annotated[
    Path | None, typer.Option("--dir", help="Runs folder; default: the config's publish.local.dir, else data/runs.")
]


def _runs_target(target: str | None, runs_dir: Path | None) -> tuple[str | None, Path]:
    """(monitor name or None for all, runs folder) of a `runs` command."""
    if target is None:
        return None, runs_dir or Path("data/runs")
    name, configured, _ = _monitor_and_runs(target)
    return name, runs_dir or configured


@runs_app.command("list", epilog="Example: evalmon runs list monitoring_local")
def runs_list_cmd(
    target: RunsTarget = None,
    runs_dir: RunsDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
) -> None:
    """The run folders, oldest first, with status and size."""

    def body() -> None:
        from shared.monitoring.sinks.retention import list_runs

        name, root = _runs_target(target, runs_dir)
        runs = [(run, run.size_bytes()) for run in list_runs(root, name)]
        if as_json:
            rows = [
                {"run_id": r.run_id, "monitor": r.monitor, "status": r.status, "bytes": size, "path": str(r.path)}
                for r, size in runs
            ]
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
            return
        for run, size in runs:
            out.print(f"{run.run_id}  {run.status:<10} {_human_bytes(size):>9}", highlight=False)
        whose = f" of {name}" if name else ""
        total = _human_bytes(sum(size for _, size in runs))
        out.print(f"{len(runs)} run folder(s){whose}, {total}, in {root}", highlight=False)

    guarded(body)


@runs_app.command("prune", epilog="Example: evalmon runs prune --keep 50 --older-than 30d --dry-run")
def runs_prune_cmd(
    target: RunsTarget = None,
    keep: Annotated[int | None, typer.Option(min=0, help="Keep each monitor's newest N run folders.")] = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Delete folders of runs started longer ago: 30d, 12h, 2w.")
    ] = None,
    runs_dir: RunsDir = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")] = False,
) -> None:
    """Delete old run folders; with --keep and --older-than, only folders both rules let go."""

    def body() -> None:
        from shared.monitoring.sinks.retention import list_runs, parse_age, prune_runs, runs_to_prune

        if keep is None and older_than is None:
            raise ConfigError("say which folders to delete: --keep N, --older-than AGE (30d), or both", field="--keep")
        age = parse_age(older_than) if older_than is not None else None
        name, root = _runs_target(target, runs_dir)
        sizes = {run.path: run.size_bytes() for run in runs_to_prune(list_runs(root, name), keep=keep, older_than=age)}
        if dry_run:
            for path in sizes:
                out.print(f"would delete {path.name}", highlight=False)
            freed = _human_bytes(sum(sizes.values()))
            out.print(f"would delete {len(sizes)} run folder(s), {freed}, in {root}", highlight=False)
            return
        removed = prune_runs(root, name, keep=keep, older_than=age)
        for path in removed:
            out.print(f"deleted {path.name}", highlight=False)
        freed = _human_bytes(sum(sizes.get(path, 0) for path in removed))
        out.print(f"deleted {len(removed)} run folder(s), {freed}, in {root}", highlight=False)

    guarded(body)


def _human_bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KB"
    for bigger in ("MB", "GB", "TB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


@app.command(epilog="Example: evalmon schedule monitoring_local --run-now")
def schedule(
    configs: Annotated[list[str], typer.Argument(help="Config files or bare names; each needs a schedule block.")],
    once: Annotated[bool, typer.Option("--once", help="Run every monitor once now; exit with the worst code.")] = False,
    status_file: Annotated[
        Path, typer.Option("--status-file", help="JSON status per monitor, replaced atomically.")
    ] = Path("data/scheduler.status.json"),
    run_now: Annotated[bool, typer.Option("--run-now", help="Also run every monitor at start.")] = False,
    stop_grace: Annotated[
        float, typer.Option(min=0, help="Seconds a running monitor gets to finish after SIGTERM/Ctrl-C.")
    ] = 3.0,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config field: path=value.")] = None,
) -> None:
    """Run monitors on their schedule (UTC) until SIGTERM or Ctrl-C."""

    def body() -> int:
        from shared.monitoring.scheduler import MonitoringScheduler, monitor_jobs

        jobs = monitor_jobs(configs, overrides=set_ or [])
        scheduler = MonitoringScheduler(jobs, status_path=status_file, stop_grace_s=stop_grace)
        return scheduler.run_once() if once else scheduler.serve(run_now=run_now)

    raise typer.Exit(guarded(body))


@app.command("cron-matrix", epilog="Example: evalmon cron-matrix monitoring_langfuse")
def cron_matrix(
    configs: Annotated[
        list[str] | None, typer.Argument(help="Only these configs (marked or not); default: every marked one.")
    ] = None,
) -> None:
    """Print the monitors the GitHub Actions cron runs (`schedule.github_actions: true`) as one JSON line:
    a list of {name, config, monitor, ledger}, the matrix of .github/workflows/monitoring.yml."""

    def body() -> None:
        from dataclasses import asdict

        from shared.monitoring.cron_matrix import cron_entries

        entries = cron_entries(configs or [])
        sys.stdout.write(json.dumps([asdict(entry) for entry in entries], separators=(",", ":")) + "\n")

    guarded(body)


@app.command(epilog="Example: evalmon backfill mine.yaml --since 2026-11-01 --until 2026-11-02")
def backfill(
    config: Annotated[str, typer.Argument(help="Config file, or a bare name under src/implementations/*/config/.")],
    since: Annotated[str, typer.Option(help="Window start, ISO 8601 (UTC if no offset).")],
    until: Annotated[str, typer.Option(help="Window end (exclusive), ISO 8601.")],
    chunk: Annotated[str, typer.Option(help="Chunk length: 1h, 30m, 1d, 1h30m.")] = "1h",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Evaluate without publishing or recording.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the backfill report as JSON on stdout.")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config field: path=value.")] = None,
) -> None:
    """Score a past window in chunks with the usual dedup; rerun the same command to resume."""

    def body() -> int:
        from shared.monitoring.backfill import monitor_backfill

        report = monitor_backfill(config, since=since, until=until, chunk=chunk, overrides=set_ or [], dry_run=dry_run)
        if as_json:
            sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        else:
            out.print(report.describe(), highlight=False)
        return report.exit_code

    raise typer.Exit(guarded(body))


if __name__ == "__main__":  # pragma: no cover
    app()
