"""Soak test: many concurrent runs of one monitor under faults and SIGKILLs, then check the end state.

    .venv/bin/python scripts/soak.py --minutes 30            # DATABASE_URL, else the local test server

What it does (docs/soak.md): the loopback fake Langfuse (tests/fakes/langfuse_server.py) serves
traces behind a proxy that loses a share of responses after the server handled the request; the
fake answers 5xx and 429 on its own. Four worker processes (`evalmon run --json`, each with a
random `--limit`) run the same monitor again and again with `dedup.store: postgres`,
`publish.postgres` and `publish.langfuse`; about half of them are SIGKILLed at a chosen stage
(preflight, fetch, claim, scoring, inside the Postgres transaction, between the sinks, inside the
Langfuse publish, between publishing and the ledger write, inside the ledger write, at finish) or
at a random moment. Time is cut into epochs, each with its own window of new traces (seeded in
batches while the workers run). At the end of an epoch the faults stop, one clean run mops up, a
second clean run must find nothing left, and the checks run:

- Langfuse holds exactly one score per (trace, metric), for every trace (full coverage);
- Postgres holds exactly one result row per (item, metric, version), for every item;
- the ledger never holds a pair that Langfuse or Postgres lacks (also checked during the chaos);
- no run is left `running`, no claim and no run lease is left behind.

Exit 0 when every check passed, 1 when one failed (each problem is printed), 2 for usage errors.
The last stdout line is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fakes

from fakes.langfuse_server import FakeLangfuse, generate_traces  # noqa: E402

from shared.database.migrate import migrate  # noqa: E402
from shared.settings import Settings  # noqa: E402

MONITOR = "soak"
METRICS = ("non_empty", "soak_len")
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
EPOCH_ZERO = datetime(2026, 1, 1, tzinfo=UTC)  # fake time: epoch k reads the hour starting k hours later
STAGES = (
    "check",  # after the Postgres preflight: lease taken, nothing written
    "fetch",  # while records stream in
    "claim",  # right after the first claims were taken
    "score",  # in the middle of scoring
    "postgres",  # a random moment around/inside the Postgres transaction
    "between_sinks",  # Postgres committed, Langfuse not started
    "langfuse",  # a random moment inside the Langfuse publish
    "before_record",  # both sinks done, ledger not written
    "record",  # a random moment around/inside the ledger write
    "finish",  # before the run row gets its final status
    "random",  # any moment of the run
)
WORKER_TIMEOUT_S = 240.0
SEED_PARTS = 8  # an epoch's traces arrive in this many batches, spread over the epoch

# Imported by every worker (`plugins:` in the config): a metric, and the kill points.
PLUGIN = '''
"""Soak worker hooks: the soak_len metric and a SIGKILL at the stage in EVALMON_SOAK_KILL."""

import asyncio
import os
import random
import signal
import threading

from shared.database.ledger import PostgresScoredItemsStore
from shared.database.sink import PostgresSink
from shared.evaluation.metric import BaseMetric, MetricParams, metric
from shared.langfuse.sink import LangfuseSink
from shared.monitoring.monitor import OnlineMonitor

STAGE = os.environ.get("EVALMON_SOAK_KILL", "")
NTH = int(os.environ.get("EVALMON_SOAK_NTH", "1"))
RNG = random.Random(os.environ.get("EVALMON_SOAK_SEED"))


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def die_within(seconds):
    timer = threading.Timer(RNG.uniform(0, seconds), die)
    timer.daemon = True
    timer.start()


@metric(key="soak_len", description="Output length / 100 after a short pause (the soak's scoring stage).")
class SoakLen(BaseMetric):
    class Params(MetricParams):
        delay_s: float = 0.0

    calls = 0

    async def execute(self, item):
        SoakLen.calls += 1
        if STAGE == "score" and SoakLen.calls == NTH:
            die()
        await asyncio.sleep(self.params.delay_s)
        return self.result(min(len(item.actual_output or "") / 100, 1.0))


def hook(cls, name, *, before=None, after=None):
    real = getattr(cls, name)  # AttributeError here: a hook target moved, the soak reports the run

    async def hooked(self, *args, **kwargs):
        if before is not None:
            before()
        result = await real(self, *args, **kwargs)
        if after is not None:
            after(result)
        return result

    setattr(cls, name, hooked)


if STAGE == "check":
    hook(PostgresSink, "check", after=lambda _: die())
elif STAGE == "fetch":
    real_extract = OnlineMonitor._extract
    seen = [0]

    def extract(self, record, counts):
        seen[0] += 1
        if seen[0] == NTH:
            die()
        return real_extract(self, record, counts)

    OnlineMonitor._extract = extract
elif STAGE == "claim":
    hook(PostgresScoredItemsStore, "filter_unscored", after=lambda got: got and die())
elif STAGE == "postgres":
    hook(PostgresSink, "publish", before=lambda: die_within(0.08))
elif STAGE == "between_sinks":
    hook(PostgresSink, "publish", after=lambda _: die())
elif STAGE == "langfuse":
    hook(LangfuseSink, "publish", before=lambda: die_within(0.4))
elif STAGE == "before_record":
    hook(LangfuseSink, "publish", after=lambda _: die())
elif STAGE == "record":
    hook(PostgresScoredItemsStore, "record", before=lambda: die_within(0.03))
elif STAGE == "finish":
    hook(PostgresSink, "finish", before=die)
elif STAGE == "random":
    die_within(float(os.environ.get("EVALMON_SOAK_WITHIN_S", "6")))
'''


# -- the lossy proxy ------------------------------------------------------------------------------
class LossyProxy:
    """TCP proxy to the fake that drops a share of responses after the request reached the server.

    The client sees the connection close without an answer (or with half of one), although the
    server acted on the request: the "lost response" a retry must survive without doubling anything.
    """

    def __init__(self, target_port: int, *, loss: float, seed: int) -> None:
        self.target_port = target_port
        self.loss = loss
        self.dropped = 0
        self.port = 0
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="soak-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LossyProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._connection, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        awaiting_answer = [False]

        async def upstream() -> None:
            while data := await client_r.read(65536):
                awaiting_answer[0] = True
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if awaiting_answer[0]:
                    awaiting_answer[0] = False
                    if self.loss and self._rng.random() < self.loss:
                        self.dropped += 1
                        return
                client_w.write(data)
                await client_w.drain()

        pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except (ConnectionError, OSError):
            pass
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            client_w.transport.abort()
            server_w.transport.abort()


# -- workers --------------------------------------------------------------------------------------
@dataclass
class Worker:
    number: int
    stage: str | None  # where it will be killed, None: left alone
    process: subprocess.Popen[bytes]
    started: float
    out_path: Path
    err_path: Path


@dataclass
class Figures:
    runs: int = 0
    exits: Counter[str] = field(default_factory=Counter)
    kills_planned: Counter[str] = field(default_factory=Counter)
    kills_done: Counter[str] = field(default_factory=Counter)
    evaluated: int = 0
    published_langfuse: int = 0
    claimed_elsewhere: int = 0
    longest_run_s: float = 0.0
    mid_checks: int = 0
    problems: list[str] = field(default_factory=list)


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.schema = f"soak_{uuid.uuid4().hex[:10]}"
        self.url: str = args.database_url
        self.settings = Settings(database_url=SecretStr(self.url), evalmon_db_schema=self.schema)
        self.workdir = Path(tempfile.mkdtemp(prefix="evalmon-soak-"))
        self.fake = FakeLangfuse()
        self.proxy: LossyProxy | None = None
        self.figures = Figures()
        self.expected: set[str] = set()  # trace ids seeded so far
        self._numbers = 0

    # -- setup ----------------------------------------------------------------------------------
    def start(self) -> None:
        migrate(self.settings)
        self.fake.start()
        self.proxy = LossyProxy(self.fake.port, loss=self.args.loss, seed=self.args.seed).start()
        (self.workdir / "soak_plugin.py").write_text(PLUGIN, encoding="utf-8")
        config = {
            "monitor": MONITOR,
            "plugins": ["soak_plugin"],
            "source": {
                "type": "langfuse",
                "trace_name": "athena",
                "page_size": 50,
                "max_retries": 12,
                "retry_initial_s": 0.05,
                "retry_max_s": 0.5,
            },
            "metrics": [{"key": "non_empty"}, {"key": "soak_len", "params": {"delay_s": 0.004}}],
            "evaluation": {"concurrency": 8, "timeout_s": 30},
            "dedup": {"store": "postgres", "claim_ttl_s": self.args.claim_ttl_s},
            "publish": {
                "local": {"dir": "runs"},
                "postgres": True,
                "langfuse": {"enabled": True, "environment": "production"},
            },
        }
        (self.workdir / "soak.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        self.fake.stop()
        if not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'.encode())

    def faults(self, on: bool) -> None:
        assert self.proxy is not None
        if on:
            self.fake.set_faults(
                error_rate=self.args.error_rate,
                rate_limit_every=self.args.rate_limit_every,
                retry_after="0",
                connection_check=True,
                seed=self.rng.randrange(1 << 30),
            )
            self.proxy.loss = self.args.loss
        else:
            self.fake.set_faults()
            self.proxy.loss = 0.0

    def seed(self, epoch: int, n: int, part: int) -> None:
        since = EPOCH_ZERO + timedelta(hours=epoch)
        rows = list(generate_traces(n, since=since, until=since + timedelta(hours=1), seed=epoch * 100 + part + 1))
        self.fake.seed_observations(rows)
        self.expected.update(str(r["traceId"]) for r in rows if r.get("isRootObservation"))

    # -- one worker -----------------------------------------------------------------------------
    def launch(self, epoch: int, *, stage: str | None, limit: int | None) -> Worker:
        assert self.proxy is not None
        self._numbers += 1
        number = self._numbers
        since = EPOCH_ZERO + timedelta(hours=epoch)
        env = {
            **os.environ,
            "LANGFUSE_BASE_URL": self.proxy.url,
            "LANGFUSE_PUBLIC_KEY": self.fake.public_key,
            "LANGFUSE_SECRET_KEY": self.fake.secret_key,
            "DATABASE_URL": self.url,
            "EVALMON_DB_SCHEMA": self.schema,
            "PYTHONPATH": os.pathsep.join([str(self.workdir), os.environ.get("PYTHONPATH", "")]),
            "EVALMON_SOAK_KILL": stage or "",
            "EVALMON_SOAK_NTH": str(self.rng.randint(1, 30)),
            "EVALMON_SOAK_SEED": str(self.rng.randrange(1 << 30)),
            "EVALMON_SOAK_WITHIN_S": str(self.args.random_kill_within_s),
        }
        command = [sys.executable, "-m", "shared.cli", "run", str(self.workdir / "soak.yaml"), "--json"]
        command += ["--since", since.isoformat(), "--until", (since + timedelta(hours=1)).isoformat()]
        if limit:
            command += ["--limit", str(limit)]
        out_path = self.workdir / "logs" / f"{number}.out"
        err_path = out_path.with_suffix(".err")
        out_path.parent.mkdir(exist_ok=True)
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(command, cwd=self.workdir, env=env, stdout=out, stderr=err)
        self.figures.runs += 1
        if stage:
            self.figures.kills_planned[stage] += 1
        return Worker(number, stage, process, time.monotonic(), out_path, err_path)

    def collect(self, worker: Worker, *, clean: bool = False) -> dict[str, Any] | None:
        """Account for a finished worker; its summary, or None when it was killed or broke."""
        code = worker.process.returncode
        self.figures.longest_run_s = max(self.figures.longest_run_s, time.monotonic() - worker.started)
        if code == -signal.SIGKILL and worker.stage:
            self.figures.exits["killed"] += 1
            self.figures.kills_done[worker.stage] += 1
            self._forget(worker)
            return None
        summary: dict[str, Any] | None = None
        try:
            summary = json.loads(worker.out_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = None
        if code not in (0, 1) or summary is None:
            tail = worker.err_path.read_text(encoding="utf-8", errors="replace")[-1500:].strip()
            self.problem(f"worker {worker.number} (kill at {worker.stage}) exited {code} without a summary: {tail}")
            return None
        status = str(summary.get("status"))
        self.figures.exits[status] += 1
        counts = summary.get("counts", {})
        self.figures.evaluated += int(counts.get("evaluated", 0))
        self.figures.published_langfuse += int(counts.get("published_langfuse", 0))
        self.figures.claimed_elsewhere += int(counts.get("claimed_elsewhere", 0))
        if clean and (code != 0 or status != "ok"):
            self.problem(f"clean run {worker.number} ended {status} (exit {code}): {summary.get('errors')}")
        if self.args.verbose and status != "ok":
            print(f"  worker {worker.number}: {status}: {summary.get('errors')}", flush=True)
        self._forget(worker)
        return summary

    def _forget(self, worker: Worker) -> None:
        if not self.args.keep:
            worker.out_path.unlink(missing_ok=True)
            worker.err_path.unlink(missing_ok=True)

    def wait(self, worker: Worker, *, clean: bool = False) -> dict[str, Any] | None:
        try:
            worker.process.wait(WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
            self.problem(f"worker {worker.number} (kill at {worker.stage}) hung for {WORKER_TIMEOUT_S:g}s")
            return None
        return self.collect(worker, clean=clean)

    def problem(self, text: str) -> None:
        self.figures.problems.append(text)
        print(f"PROBLEM: {text}", flush=True)

    # -- an epoch ---------------------------------------------------------------------------------
    def epoch(self, number: int, seconds: float) -> None:
        """Chaos for `seconds` on a fresh window, then a clean mop-up and the end-state checks."""
        parts = [len(p) for p in _split(range(self.args.traces_per_epoch), SEED_PARTS)]
        seeded = 0
        self.faults(True)
        started = time.monotonic()
        deadline = started + seconds
        next_check = started + 5
        active: list[Worker] = []
        while time.monotonic() < deadline:
            for worker in [w for w in active if w.process.poll() is not None]:
                active.remove(worker)
                self.collect(worker)
            for worker in [w for w in active if time.monotonic() - w.started > WORKER_TIMEOUT_S]:
                active.remove(worker)
                self.wait(worker)
            while len(active) < self.args.workers:
                doomed = self.rng.random() < self.args.kill_share
                stage = self.rng.choice(STAGES) if doomed else None
                limit = self.rng.choice((None, 10, 25, 40, 60))
                active.append(self.launch(number, stage=stage, limit=limit))
            while seeded < len(parts) and time.monotonic() >= started + seconds * seeded / len(parts):
                self.seed(number, parts[seeded], seeded)  # new traces keep arriving while workers run
                seeded += 1
            if time.monotonic() > next_check:
                self.check_ledger_is_published()
                next_check = time.monotonic() + 5
            time.sleep(0.1)
        for worker in active:
            self.wait(worker)
        for part in range(seeded, len(parts)):
            self.seed(number, parts[part], part)
        self.faults(False)
        self.check_ledger_is_published()
        mop_up = self.wait(self.launch(number, stage=None, limit=None), clean=True)
        if mop_up is not None and mop_up["counts"].get("claimed_elsewhere"):
            self.problem(f"epoch {number}: the clean run found claims held: {mop_up['counts']}")
        again = self.wait(self.launch(number, stage=None, limit=None), clean=True)
        if again is not None and again["counts"].get("evaluated"):
            self.problem(f"epoch {number}: a second clean run still found work: {again['counts']}")
        self.check_end_state(f"epoch {number}")

    # -- checks -----------------------------------------------------------------------------------
    def _query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as conn:
            conn.execute(f'SET search_path TO "{self.schema}"'.encode())
            return conn.execute(sql.encode(), params or []).fetchall()

    def _langfuse_pairs(self) -> Counter[tuple[str, str]]:
        return Counter((str(s.get("traceId")), str(s.get("name"))) for s in self.fake.scores())

    def check_ledger_is_published(self) -> None:
        """Every ledger pair is in Langfuse and in Postgres (ledger read first: it is written last)."""
        self.figures.mid_checks += 1
        ledger = self._query(
            "SELECT item_id, metric_name, metric_version FROM scored_items WHERE monitor = %s", [MONITOR]
        )
        published = self._langfuse_pairs()
        rows = {
            (str(i), str(m), str(v))
            for i, m, v in self._query(
                "SELECT item_id, metric_name, metric_version FROM evaluation_results WHERE monitor = %s", [MONITOR]
            )
        }
        not_in_langfuse = [(i, m) for i, m, _ in ledger if (i, m) not in published]
        not_in_postgres = [key for key in ledger if key not in rows]
        if not_in_langfuse:
            self.problem(f"{len(not_in_langfuse)} ledger pair(s) without a Langfuse score, e.g. {not_in_langfuse[:3]}")
        if not_in_postgres:
            self.problem(f"{len(not_in_postgres)} ledger pair(s) without a Postgres row, e.g. {not_in_postgres[:3]}")

    def check_end_state(self, label: str) -> None:
        expected = {(t, m) for t in self.expected for m in METRICS}
        scores = self._langfuse_pairs()
        doubled = [pair for pair, n in scores.items() if n > 1]
        if doubled:
            self.problem(f"{label}: {len(doubled)} (trace, metric) pair(s) scored twice in Langfuse: {doubled[:3]}")
        if set(scores) != expected:
            missing, extra = expected - set(scores), set(scores) - expected
            self.problem(f"{label}: Langfuse coverage: {len(missing)} missing, {len(extra)} unexpected")
        per_key = self._query(
            "SELECT item_id, metric_name, metric_version, count(*) FROM evaluation_results WHERE monitor = %s "
            "GROUP BY 1, 2, 3",
            [MONITOR],
        )
        if any(n != 1 for *_, n in per_key):
            self.problem(f"{label}: a (item, metric, version) has several result rows")
        pairs = Counter((str(i), str(m)) for i, m, _, _ in per_key)
        if set(pairs) != expected or any(n != 1 for n in pairs.values()):
            self.problem(f"{label}: Postgres coverage: {len(expected - set(pairs))} missing, {len(pairs)} pairs")
        ledger = {(str(i), str(m)) for i, m in self._query("SELECT item_id, metric_name FROM scored_items")}
        if ledger != expected:
            self.problem(f"{label}: ledger coverage: {len(expected - ledger)} missing, {len(ledger - expected)} extra")
        self.check_ledger_is_published()
        leftovers = self._query(
            "SELECT (SELECT count(*) FROM evaluation_runs WHERE status = 'running'), "
            "(SELECT count(*) FROM item_claims), (SELECT count(*) FROM run_leases)"
        )[0]
        if any(leftovers):
            self.problem(
                f"{label}: left behind: {leftovers[0]} running run(s), {leftovers[1]} claim(s), {leftovers[2]} lease(s)"
            )

    def check_kill_points(self) -> None:
        """A stage planned often but never reached means its hook no longer fires (the code moved)."""
        for stage, planned in self.figures.kills_planned.items():
            if planned >= 8 and not self.figures.kills_done[stage] and stage != "random":
                self.problem(f"kill point '{stage}' was planned {planned} times and never reached")

    def report(self, elapsed_s: float, epochs: int) -> dict[str, Any]:
        f = self.figures
        runs = dict(self._query("SELECT status, count(*) FROM evaluation_runs GROUP BY 1"))
        return {
            "passed": not f.problems,
            "minutes": round(elapsed_s / 60, 1),
            "epochs": epochs,
            "worker_runs": f.runs,
            "exits": dict(f.exits),
            "kills_planned": dict(f.kills_planned),
            "kills_done": dict(f.kills_done),
            "kills_total": sum(f.kills_done.values()),
            "faults": {
                "http_503": self.fake.statuses.get(503, 0),
                "http_429": self.fake.statuses.get(429, 0),
                "lost_responses": self.proxy.dropped if self.proxy else 0,
            },
            "traces": len(self.expected),
            "langfuse_scores": len(self.fake.scores()),
            "result_rows": self._query("SELECT count(*) FROM evaluation_results")[0][0],
            "ledger_rows": self._query("SELECT count(*) FROM scored_items")[0][0],
            "run_rows": runs,
            "evaluated_items": f.evaluated,
            "claimed_elsewhere": f.claimed_elsewhere,
            "ledger_checks": f.mid_checks,
            "longest_run_s": round(f.longest_run_s, 1),
            "problems": f.problems[:20],
        }


def _split(values: range, parts: int) -> list[range]:
    step = -(-len(values) // parts)
    return [values[i : i + step] for i in range(0, len(values), step)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Soak a monitor under faults, kills and concurrency.")
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the chaos lasts (default 30)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent worker processes (default 4)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("EVALMON_SOAK_DATABASE_URL") or os.environ.get("DATABASE_URL") or DEFAULT_URL,
        help="Postgres to use (a throw-away schema is created and dropped); default DATABASE_URL",
    )
    parser.add_argument("--epoch-s", type=float, default=90.0, help="chaos per window before a check (default 90)")
    parser.add_argument("--traces-per-epoch", type=int, default=240, help="new traces per window (default 240)")
    parser.add_argument("--kill-share", type=float, default=0.5, help="share of runs SIGKILLed (default 0.5)")
    parser.add_argument("--error-rate", type=float, default=0.1, help="share of fake answers that are 503")
    parser.add_argument("--rate-limit-every", type=int, default=9, help="every Nth fake answer is a 429")
    parser.add_argument("--loss", type=float, default=0.05, help="share of responses the proxy loses")
    parser.add_argument("--claim-ttl-s", type=float, default=20.0, help="dedup.claim_ttl_s of the monitor")
    parser.add_argument("--random-kill-within-s", type=float, default=6.0, help="`random` kills happen this soon")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="for a repeatable schedule of faults")
    parser.add_argument("--keep", action="store_true", help="keep the schema, workspace and worker logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every run that did not end ok")
    args = parser.parse_args(argv)
    for name in ("minutes", "epoch_s", "claim_ttl_s"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.workers < 1 or args.traces_per_epoch < SEED_PARTS:
        parser.error(f"--workers must be >= 1 and --traces-per-epoch >= {SEED_PARTS}")
    for name in ("kill_share", "error_rate", "loss"):
        if not 0 <= getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be in [0, 1)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soak = Soak(args)
    started = time.monotonic()
    total_s = args.minutes * 60
    print(
        f"soak: {args.minutes:g} min, {args.workers} workers, schema {soak.schema}, seed {args.seed}, "
        f"workspace {soak.workdir}",
        flush=True,
    )
    epochs = 0
    try:
        soak.start()
        while (left := total_s - (time.monotonic() - started)) > 1:
            seconds = min(args.epoch_s, left)
            if left - seconds < args.epoch_s / 3:  # no stub epoch at the end
                seconds = left
            soak.epoch(epochs, seconds)
            epochs += 1
            f = soak.figures
            print(
                f"epoch {epochs}: {time.monotonic() - started:6.0f}s  runs {f.runs}  exits {dict(f.exits)}  "
                f"kills {sum(f.kills_done.values())}  traces {len(soak.expected)}  "
                f"problems {len(f.problems)}",
                flush=True,
            )
        soak.check_kill_points()
        figures = soak.report(time.monotonic() - started, epochs)
    finally:
        soak.close()
    print(json.dumps(figures, sort_keys=True), flush=True)
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
