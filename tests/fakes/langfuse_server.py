"""A loopback fake of Langfuse's public API, for tests and benchmarks, driven through the real SDK.

It follows tests/contracts/langfuse-openapi.yml for every route evalmon calls (a contract test
validates its responses against that spec) and keeps state the way the server does where it
matters to us: scores are upserted by id, prompts are versioned with unique labels, dataset items
are upserted by id.

Routes: health, projects (auth check), v2 observations (cursor, `fields` groups, JSON `filter`,
`expandMetadata`, limit <= 1000), POST scores (JSON list -> 202, or 207 with accepted/rejected
counts), v3 scores (id/name/traceId/observationId filters, `fields`, cursor, limit <= 100),
v2 prompts (list, get by version/label, create, update labels), v2 datasets, dataset items,
dataset run items and runs, score configs (list, get, create) and annotation queues (list, get,
create; queue items list, get, add, update, remove: adding the same object twice makes two
items, as Langfuse does), OTLP trace ingestion (`POST /api/public/otel/v1/traces`, protobuf or
JSON, gzip; each span becomes an observation row the way Langfuse ingests it, see langfuse_otel.py)
and experiment items derived from the ingested spans (`GET /api/public/experiment-items`).

Fault injection (`faults`): a share of 5xx answers, a 429 with Retry-After every N requests,
and "fail every score write after N stored scores". `requests` counts requests per route.

Usage:

    with FakeLangfuse() as fake:
        fake.seed_traces(generate_traces(100, since=..., until=...))
        settings = Settings(langfuse_base_url=fake.url, langfuse_public_key=fake.public_key, ...)
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .langfuse_otel import any_value, observation_rows

PROJECT_ID = "proj-fake-evalmon"

FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    "core": ("id", "traceId", "startTime", "endTime", "projectId", "parentObservationId", "type"),
    "basic": (
        "name",
        "level",
        "statusMessage",
        "version",
        "environment",
        "bookmarked",
        "public",
        "userId",
        "sessionId",
        "isRootObservation",
    ),
    "time": ("completionStartTime", "createdAt", "updatedAt"),
    "io": ("input", "output"),
    "metadata": ("metadata",),
    "model": (
        "providedModelName",
        "internalModelId",
        "modelParameters",
        "modelId",
        "inputPrice",
        "outputPrice",
        "totalPrice",
    ),
    "usage": ("usageDetails", "costDetails", "totalCost", "usagePricingTierName"),
    "prompt": ("promptId", "promptName", "promptVersion"),
    "metrics": ("latency", "timeToFirstToken"),
    "trace_context": ("tags", "release", "traceName"),
}
# Required by ObservationV2 in the spec even when the `model` group is not requested (then null).
ALWAYS_PRESENT = ("modelId", "inputPrice", "outputPrice", "totalPrice")
SCORE_FIELD_GROUPS = {"details", "subject", "annotation"}
SCORE_CONFIG_TYPES = ("NUMERIC", "BOOLEAN", "CATEGORICAL", "TEXT")
QUEUE_OBJECT_TYPES = ("TRACE", "OBSERVATION", "SESSION")
QUEUE_STATUSES = ("PENDING", "COMPLETED")


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    padded = cursor + "=" * (-len(cursor) % 4)
    return int(json.loads(base64.urlsafe_b64decode(padded))["o"])


class BadRequest(Exception):
    """A 400 answer with a message (as Langfuse answers invalid parameters)."""


@dataclass
class Faults:
    """What the fake breaks on purpose. Applies to /api/public routes except health and projects
    (the connection check), unless `connection_check` says to break that one too."""

    error_rate: float = 0.0  # share of requests answered 503
    rate_limit_every: int = 0  # every Nth request answered 429 with Retry-After
    retry_after: str = "0"
    fail_writes_after: int | None = None  # POST scores answers 503 once this many scores are stored
    reject_score_names: set[str] = field(default_factory=set)  # 207: these scores are rejected
    connection_check: bool = False  # also inject 5xx/429 into GET /api/public/projects
    seed: int = 7


@dataclass
class FakeState:
    observations: list[dict[str, Any]] = field(default_factory=list)  # newest first
    by_trace: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    score_writes: int = 0  # scores accepted over all POSTs (upserts included)
    prompts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    dataset_items: dict[str, dict[str, Any]] = field(default_factory=dict)
    dataset_runs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    run_items: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    spans: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (traceId, spanId)
    score_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    queue_items: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeLangfuse:
    """The server: start() runs uvicorn on 127.0.0.1:<ephemeral> in a daemon thread."""

    def __init__(self, *, public_key: str | None = None, secret_key: str = "sk-lf-fake-secret") -> None:
        # A unique public key per server: the SDK caches one client per public key per process.
        self.public_key = public_key or f"pk-lf-fake-{uuid.uuid4().hex[:12]}"
        self.secret_key = secret_key
        self.state = FakeState()
        self.faults = Faults()
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self._lock = threading.RLock()
        self._rng = random.Random(self.faults.seed)
        self._fault_counter = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeLangfuse:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="error", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake Langfuse did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeLangfuse:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_faults(self, **kwargs: Any) -> None:
        with self._lock:
            self.faults = Faults(**kwargs)
            self._rng = random.Random(self.faults.seed)
            self._fault_counter = 0

    def env(self) -> dict[str, str]:
        """The environment variables that point the SDK (and evalmon) at this server."""
        return {
            "LANGFUSE_BASE_URL": self.url,
            "LANGFUSE_PUBLIC_KEY": self.public_key,
            "LANGFUSE_SECRET_KEY": self.secret_key,
        }

    # -- seeding -----------------------------------------------------------------------------
    def seed_observations(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add observation rows (v2 shape; input/output may be objects, stored as raw strings)."""
        with self._lock:
            for raw in rows:
                row = _normalise_row(raw)
                self.state.observations.append(row)
                self.state.by_trace.setdefault(row["traceId"], []).append(row)
            self.state.observations.sort(key=lambda r: (r["startTime"], r["id"]), reverse=True)

    def upsert_observations(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add or replace observation rows by (traceId, id), as re-exported spans replace earlier versions."""
        with self._lock:
            fresh = {(r["traceId"], r["id"]): _normalise_row(r) for r in rows}
            if not fresh:
                return
            kept = [r for r in self.state.observations if (r["traceId"], r["id"]) not in fresh]
            self.state.observations = sorted(
                [*kept, *fresh.values()], key=lambda r: (r["startTime"], r["id"]), reverse=True
            )
            self.state.by_trace = {}
            for row in reversed(self.state.observations):
                self.state.by_trace.setdefault(row["traceId"], []).append(row)

    def seed_jsonl(self, path: Path) -> int:
        """Seed from a JSONL file of observation rows or of v3 traces with `observations`."""
        rows: list[dict[str, Any]] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if "observations" in record:
                rows.extend(_rows_from_v3(record))
            else:
                rows.append(record)
        self.seed_observations(rows)
        return len(rows)

    # -- readers for assertions --------------------------------------------------------------
    def score_ids(self) -> set[str]:
        with self._lock:
            return set(self.state.scores)

    def scores(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(s) for s in self.state.scores.values()]

    def seed_score(self, **fields: Any) -> str:
        """Store one score as Langfuse holds it, with fields a POST cannot set (`source`, `queueId`,
        `authorUserId`): how human labels from annotation queues or user feedback look."""
        stamp = fields.get("timestamp")
        if isinstance(stamp, datetime):
            fields["timestamp"] = iso(stamp)
        with self._lock:
            return self._store_score(fields)

    def queue_items_of(self, queue_name: str) -> list[dict[str, Any]]:
        """Every item of the queues named `queue_name` (duplicates included), oldest first."""
        with self._lock:
            ids = {q["id"] for q in self.state.queues.values() if q["name"] == queue_name}
            return [dict(i) for i in self.state.queue_items.values() if i["queueId"] in ids]

    def experiment_items(self) -> list[dict[str, Any]]:
        """Every experiment item the ingested spans describe (all field groups), oldest first."""
        with self._lock:
            items = [_experiment_item(span, self.state) for span in self.state.spans.values() if _is_item_root(span)]
        return sorted(items, key=lambda i: (i["startTime"], i["id"]))

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.statuses.clear()

    # -- app ---------------------------------------------------------------------------------
    def app(self) -> Starlette:
        routes = [
            Route("/api/public/health", self._health, methods=["GET"]),
            Route("/api/public/projects", self._projects, methods=["GET"]),
            Route("/api/public/v2/observations", self._observations, methods=["GET"]),
            Route("/api/public/scores", self._create_scores, methods=["POST"]),
            Route("/api/public/v3/scores", self._get_scores, methods=["GET"]),
            Route("/api/public/v2/prompts", self._prompts, methods=["GET", "POST"]),
            Route("/api/public/v2/prompts/{name:path}/versions/{version:int}", self._prompt_version, methods=["PATCH"]),
            Route("/api/public/v2/prompts/{name:path}", self._get_prompt, methods=["GET"]),
            Route("/api/public/v2/datasets", self._datasets, methods=["POST"]),
            Route("/api/public/v2/datasets/{name:path}", self._get_dataset, methods=["GET"]),
            Route("/api/public/dataset-items", self._dataset_items, methods=["GET", "POST"]),
            Route("/api/public/dataset-run-items", self._create_run_item, methods=["POST"]),
            Route("/api/public/datasets/{dataset:path}/runs/{run}", self._get_run, methods=["GET"]),
            Route("/api/public/otel/v1/traces", self._otel_traces, methods=["POST"]),
            Route("/api/public/experiment-items", self._experiment_items, methods=["GET"]),
            Route("/api/public/score-configs", self._score_configs, methods=["GET", "POST"]),
            Route("/api/public/score-configs/{config_id}", self._get_score_config, methods=["GET"]),
            Route("/api/public/annotation-queues", self._queues, methods=["GET", "POST"]),
            Route("/api/public/annotation-queues/{queue_id}", self._get_queue, methods=["GET"]),
            Route("/api/public/annotation-queues/{queue_id}/items", self._queue_items, methods=["GET", "POST"]),
            Route(
                "/api/public/annotation-queues/{queue_id}/items/{item_id}",
                self._queue_item,
                methods=["GET", "PATCH", "DELETE"],
            ),
        ]
        return Starlette(routes=routes)

    def _guard(self, request: Request, route: str) -> Response | None:
        """Count, authenticate, inject faults. A Response means: answer this instead."""
        with self._lock:
            self.requests[f"{request.method} {route}"] += 1
        if route != "/api/public/health" and not self._authorised(request):
            return self._answer(JSONResponse({"message": "Invalid credentials"}, status_code=401))
        with self._lock:
            faults = self.faults
            if route == "/api/public/health" or (route == "/api/public/projects" and not faults.connection_check):
                return None
            self._fault_counter += 1
            if faults.rate_limit_every and self._fault_counter % faults.rate_limit_every == 0:
                return self._answer(
                    JSONResponse(
                        {"message": "Rate limit exceeded"},
                        status_code=429,
                        headers={"Retry-After": faults.retry_after},
                    )
                )
            if faults.error_rate and self._rng.random() < faults.error_rate:
                return self._answer(JSONResponse({"message": "Service unavailable"}, status_code=503))
        return None

    def _answer(self, response: Response) -> Response:
        with self._lock:
            self.statuses[response.status_code] += 1
        return response

    def _ok(self, body: Any, status: int = 200) -> Response:
        return self._answer(JSONResponse(body, status_code=status))

    def _bad(self, message: str, status: int = 400) -> Response:
        return self._answer(JSONResponse({"message": message}, status_code=status))

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.public_key and password == self.secret_key

    # -- routes: health, projects ------------------------------------------------------------
    async def _health(self, request: Request) -> Response:
        return self._guard(request, "/api/public/health") or self._ok({"status": "OK", "version": "4.0.0-fake"})

    async def _projects(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/projects")
        if denied:
            return denied
        return self._ok(
            {
                "data": [
                    {
                        "id": PROJECT_ID,
                        "name": "evalmon-fake",
                        "organization": {"id": "org-fake", "name": "evalmon"},
                        "metadata": {},
                    }
                ]
            }
        )

    # -- routes: observations ----------------------------------------------------------------
    async def _observations(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/v2/observations")
        if denied:
            return denied
        q = request.query_params
        try:
            if q.get("parseIoAsJson") == "true":
                raise BadRequest("parseIoAsJson is deprecated; input/output are always raw strings")
            limit = int(q.get("limit") or 50)
            if not 1 <= limit <= 1000:
                raise BadRequest("limit must be between 1 and 1000")
            groups = [g.strip() for g in (q.get("fields") or "core,basic").split(",") if g.strip()]
            unknown = [g for g in groups if g not in FIELD_GROUPS]
            if unknown:
                raise BadRequest(f"unknown field group(s): {', '.join(unknown)}")
            conditions = _conditions_from_query(q)
            offset = decode_cursor(q["cursor"]) if q.get("cursor") else 0
        except BadRequest as exc:
            return self._bad(str(exc))
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            return self._bad(f"invalid request: {exc}")
        expand = {k.strip() for k in (q.get("expandMetadata") or "").split(",") if k.strip()}
        with self._lock:
            try:
                matched = [row for row in self._candidates(conditions) if all(c(row) for c in conditions)]
            except BadRequest as exc:
                return self._bad(str(exc))
        page = matched[offset : offset + limit]
        keys = {"core", *groups}
        data = [_project_row(row, keys, expand) for row in page]
        meta: dict[str, Any] = {}
        if offset + limit < len(matched):
            meta["cursor"] = encode_cursor(offset + limit)
        return self._ok({"data": data, "meta": meta})

    def _candidates(self, conditions: list[Condition]) -> list[dict[str, Any]]:
        """Use the traceId index when a condition pins trace ids (the bulk child fetch)."""
        for cond in conditions:
            if cond.trace_ids is not None:
                rows = [r for tid in cond.trace_ids for r in self.state.by_trace.get(tid, [])]
                return sorted(rows, key=lambda r: (r["startTime"], r["id"]), reverse=True)
        return self.state.observations

    # -- routes: scores ----------------------------------------------------------------------
    async def _create_scores(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/scores")
        if denied:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return self._bad("body is not JSON")
        single = isinstance(body, dict)
        items = [body] if single else body
        if not isinstance(items, list) or not items:
            return self._bad("body must be a score or a non-empty list of scores")
        with self._lock:
            limit = self.faults.fail_writes_after
            if limit is not None and self.state.score_writes + len(items) > limit:
                return self._answer(
                    JSONResponse(
                        {"message": "Service unavailable"},
                        status_code=503,
                        headers={"Retry-After": self.faults.retry_after},
                    )
                )
            errors: list[str] = []
            accepted = 0
            last_id = ""
            for item in items:
                problem = _score_problem(item, self.faults.reject_score_names)
                if problem:
                    errors.append(problem)
                    continue
                last_id = self._store_score(item)
                accepted += 1
            self.state.score_writes += accepted
        if single:
            return self._bad(errors[0]) if errors else self._ok({"id": last_id})
        if errors:
            return self._ok(
                {"accepted": accepted, "rejected": len(errors), "errors": [{"message": m} for m in errors]}, 207
            )
        return self._ok({"message": "Accepted"}, 202)

    def _store_score(self, item: dict[str, Any]) -> str:
        now = iso(datetime.now(UTC))
        score_id = str(item.get("id") or uuid.uuid4())
        previous = self.state.scores.get(score_id)
        data_type = str(item.get("dataType") or "NUMERIC").upper()
        value: Any = item["value"]
        if data_type == "BOOLEAN":
            value = bool(float(value))
        elif data_type == "NUMERIC":
            value = float(value)
        else:
            value = str(value)
        self.state.scores[score_id] = {
            "id": score_id,
            "projectId": PROJECT_ID,
            "name": item["name"],
            "value": value,
            "dataType": data_type,
            "source": item.get("source") or "API",
            "timestamp": item.get("timestamp") or now,
            "environment": item.get("environment") or "default",
            "createdAt": previous["createdAt"] if previous else now,
            "updatedAt": now,
            "comment": item.get("comment"),
            "configId": item.get("configId"),
            "metadata": item.get("metadata"),
            "traceId": item.get("traceId"),
            "observationId": item.get("observationId"),
            "sessionId": item.get("sessionId"),
            "datasetRunId": item.get("datasetRunId"),
            "queueId": item.get("queueId"),
            "authorUserId": item.get("authorUserId"),
        }
        return score_id

    async def _get_scores(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/v3/scores")
        if denied:
            return denied
        q = request.query_params
        try:
            limit = int(q.get("limit") or 50)
            if not 1 <= limit <= 100:
                raise BadRequest("limit must be between 1 and 100")
            groups = {g.strip() for g in (q.get("fields") or "").split(",") if g.strip()}
            if groups - SCORE_FIELD_GROUPS:
                raise BadRequest(f"unknown field group(s): {', '.join(sorted(groups - SCORE_FIELD_GROUPS))}")
            if q.get("observationId") and not q.get("traceId"):
                raise BadRequest("observationId requires traceId")
            offset = decode_cursor(q["cursor"]) if q.get("cursor") else 0
            since = iso(parse_ts(q["fromTimestamp"])) if q.get("fromTimestamp") else None
            until = iso(parse_ts(q["toTimestamp"])) if q.get("toTimestamp") else None
        except BadRequest as exc:
            return self._bad(str(exc))
        except (ValueError, KeyError) as exc:
            return self._bad(f"invalid request: {exc}")

        def listed(name: str) -> set[str] | None:
            raw = q.get(name)
            return {v.strip() for v in raw.split(",") if v.strip()} if raw else None

        filters = {
            "id": listed("id"),
            "name": listed("name"),
            "traceId": listed("traceId"),
            "observationId": listed("observationId"),
            "environment": listed("environment"),
            "sessionId": listed("sessionId"),
            "datasetRunId": listed("experimentId"),
            "queueId": listed("queueId"),
        }
        types = {t.upper() for t in listed("dataType") or set()}
        sources = {t.upper() for t in listed("source") or set()}
        with self._lock:
            rows = [
                s
                for s in self.state.scores.values()
                if all(wanted is None or s.get(key) in wanted for key, wanted in filters.items())
                and (not types or s["dataType"] in types)
                and (not sources or s["source"] in sources)
                and (since is None or iso(parse_ts(s["timestamp"])) >= since)
                and (until is None or iso(parse_ts(s["timestamp"])) < until)
            ]
        rows.sort(key=lambda s: (s["timestamp"], s["id"]), reverse=True)
        page = rows[offset : offset + limit]
        meta: dict[str, Any] = {"limit": limit}
        if offset + limit < len(rows):
            meta["cursor"] = encode_cursor(offset + limit)
        return self._ok({"data": [_score_v3(s, groups) for s in page], "meta": meta})

    # -- routes: prompts ---------------------------------------------------------------------
    async def _prompts(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/v2/prompts")
        if denied:
            return denied
        if request.method == "POST":
            body = await request.json()
            if not isinstance(body, dict) or not body.get("name") or "prompt" not in body:
                return self._bad("name and prompt are required")
            with self._lock:
                prompt = self._create_prompt(body)
            return self._ok(prompt)
        q = request.query_params
        page, limit = int(q.get("page") or 1), int(q.get("limit") or 50)
        with self._lock:
            metas = [
                {
                    "name": name,
                    "type": versions[-1]["type"],
                    "versions": [v["version"] for v in versions],
                    "labels": sorted({lab for v in versions for lab in v["labels"]}),
                    "tags": versions[-1]["tags"],
                    "lastUpdatedAt": versions[-1]["_updatedAt"],
                    "lastConfig": versions[-1]["config"],
                }
                for name, versions in sorted(self.state.prompts.items())
                if not q.get("name") or name == q.get("name")
            ]
        chunk = metas[(page - 1) * limit : page * limit]
        total_pages = max(1, -(-len(metas) // limit))
        return self._ok(
            {"data": chunk, "meta": {"page": page, "limit": limit, "totalItems": len(metas), "totalPages": total_pages}}
        )

    def _create_prompt(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["name"]
        versions = self.state.prompts.setdefault(name, [])
        labels = list(dict.fromkeys([*(body.get("labels") or []), "latest"]))
        for older in versions:
            older["labels"] = [lab for lab in older["labels"] if lab not in labels]
        prompt_type = body.get("type") or ("chat" if isinstance(body["prompt"], list) else "text")
        prompt = {
            "name": name,
            "version": len(versions) + 1,
            "type": prompt_type,
            "prompt": body["prompt"],
            "config": body.get("config") or {},
            "labels": labels,
            "tags": body.get("tags") or [],
            "commitMessage": body.get("commitMessage"),
            "_updatedAt": iso(datetime.now(UTC)),
        }
        versions.append(prompt)
        return _public_prompt(prompt)

    async def _get_prompt(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/v2/prompts/{promptName}")
        if denied:
            return denied
        name = request.path_params["name"]
        version, label = request.query_params.get("version"), request.query_params.get("label")
        with self._lock:
            versions = self.state.prompts.get(name, [])
            if version is not None:
                found = next((v for v in versions if v["version"] == int(version)), None)
            else:
                wanted = label or "production"
                found = next((v for v in versions if wanted in v["labels"]), None)
            if found is None:
                return self._bad(f"Prompt not found: {name}", 404)
            return self._ok(_public_prompt(found))

    async def _prompt_version(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/v2/prompts/{name}/versions/{version}")
        if denied:
            return denied
        name, version = request.path_params["name"], request.path_params["version"]
        body = await request.json()
        new_labels = list(body.get("newLabels") or [])
        with self._lock:
            versions = self.state.prompts.get(name, [])
            target = next((v for v in versions if v["version"] == version), None)
            if target is None:
                return self._bad(f"Prompt not found: {name} v{version}", 404)
            for other in versions:
                if other is not target:
                    other["labels"] = [lab for lab in other["labels"] if lab not in new_labels]
            target["labels"] = list(dict.fromkeys([*target["labels"], *new_labels]))
            return self._ok(_public_prompt(target))

    # -- routes: datasets --------------------------------------------------------------------
    async def _datasets(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/v2/datasets")
        if denied:
            return denied
        body = await request.json()
        if not isinstance(body, dict) or not body.get("name"):
            return self._bad("name is required")
        now = iso(datetime.now(UTC))
        with self._lock:
            existing = self.state.datasets.get(body["name"])
            dataset = {
                "id": existing["id"] if existing else f"ds-{uuid.uuid4().hex[:12]}",
                "name": body["name"],
                "description": body.get("description"),
                "metadata": body.get("metadata"),
                "inputSchema": body.get("inputSchema"),
                "expectedOutputSchema": body.get("expectedOutputSchema"),
                "projectId": PROJECT_ID,
                "createdAt": existing["createdAt"] if existing else now,
                "updatedAt": now,
            }
            self.state.datasets[body["name"]] = dataset
        return self._ok(dataset)

    async def _get_dataset(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/v2/datasets/{datasetName}")
        if denied:
            return denied
        with self._lock:
            dataset = self.state.datasets.get(request.path_params["name"])
        return self._ok(dataset) if dataset else self._bad("Dataset not found", 404)

    async def _dataset_items(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/dataset-items")
        if denied:
            return denied
        if request.method == "GET":
            q = request.query_params
            page, limit = int(q.get("page") or 1), int(q.get("limit") or 50)
            with self._lock:
                items = [
                    i
                    for i in self.state.dataset_items.values()
                    if not q.get("datasetName") or i["datasetName"] == q.get("datasetName")
                ]
            chunk = items[(page - 1) * limit : page * limit]
            total_pages = max(1, -(-len(items) // limit))
            return self._ok(
                {
                    "data": chunk,
                    "meta": {"page": page, "limit": limit, "totalItems": len(items), "totalPages": total_pages},
                }
            )
        body = await request.json()
        if not isinstance(body, dict) or not body.get("datasetName"):
            return self._bad("datasetName is required")
        now = iso(datetime.now(UTC))
        with self._lock:
            dataset = self.state.datasets.get(body["datasetName"])
            if dataset is None:
                return self._bad("Dataset not found", 404)
            item_id = str(body.get("id") or uuid.uuid4())
            existing = self.state.dataset_items.get(item_id)
            item = {
                "id": item_id,
                "status": body.get("status") or "ACTIVE",
                "input": body.get("input"),
                "expectedOutput": body.get("expectedOutput"),
                "metadata": body.get("metadata"),
                "sourceTraceId": body.get("sourceTraceId"),
                "sourceObservationId": body.get("sourceObservationId"),
                "datasetId": dataset["id"],
                "datasetName": dataset["name"],
                "createdAt": existing["createdAt"] if existing else now,
                "updatedAt": now,
                "mediaReferences": [],
            }
            self.state.dataset_items[item_id] = item
        return self._ok(item)

    async def _create_run_item(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/dataset-run-items")
        if denied:
            return denied
        body = await request.json()
        if not isinstance(body, dict) or not body.get("runName") or not body.get("datasetItemId"):
            return self._bad("runName and datasetItemId are required")
        now = iso(datetime.now(UTC))
        with self._lock:
            item = self.state.dataset_items.get(body["datasetItemId"])
            if item is None:
                return self._bad("Dataset item not found", 404)
            run_key = (item["datasetName"], body["runName"])
            run = self.state.dataset_runs.get(run_key)
            if run is None:
                run = {
                    "id": f"run-{uuid.uuid4().hex[:12]}",
                    "name": body["runName"],
                    "description": body.get("runDescription"),
                    "metadata": body.get("metadata"),
                    "datasetId": item["datasetId"],
                    "datasetName": item["datasetName"],
                    "createdAt": now,
                    "updatedAt": now,
                }
                self.state.dataset_runs[run_key] = run
            key = (run["id"], item["id"])
            existing = self.state.run_items.get(key)
            run_item = {
                "id": existing["id"] if existing else f"dri-{uuid.uuid4().hex[:12]}",
                "datasetRunId": run["id"],
                "datasetRunName": run["name"],
                "datasetItemId": item["id"],
                "traceId": body.get("traceId") or "",
                "observationId": body.get("observationId"),
                "createdAt": existing["createdAt"] if existing else now,
                "updatedAt": now,
            }
            self.state.run_items[key] = run_item
        return self._ok(run_item)

    async def _get_run(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/datasets/{datasetName}/runs/{runName}")
        if denied:
            return denied
        key = (request.path_params["dataset"], request.path_params["run"])
        with self._lock:
            run = self.state.dataset_runs.get(key)
            if run is None:
                return self._bad("Dataset run not found", 404)
            items = [ri for (run_id, _), ri in self.state.run_items.items() if run_id == run["id"]]
        return self._ok({**run, "datasetRunItems": items})

    # -- routes: score configs and annotation queues -----------------------------------------
    def _page_args(self, request: Request) -> tuple[int, int]:
        """`page` (from 1) and `limit` (at most 100), as Langfuse's public pagination validates them."""
        q = request.query_params
        page, limit = int(q.get("page") or 1), int(q.get("limit") or 50)
        if page < 1 or not 1 <= limit <= 100:
            raise BadRequest("page must be at least 1 and limit between 1 and 100")
        return page, limit

    def _paged(self, rows: list[dict[str, Any]], page: int, limit: int) -> Response:
        chunk = rows[(page - 1) * limit : page * limit]
        meta = {"page": page, "limit": limit, "totalItems": len(rows), "totalPages": -(-len(rows) // limit)}
        return self._ok({"data": chunk, "meta": meta})

    async def _score_configs(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/score-configs")
        if denied:
            return denied
        if request.method == "GET":
            try:
                page, limit = self._page_args(request)
            except (BadRequest, ValueError) as exc:
                return self._bad(str(exc))
            with self._lock:
                rows = sorted(self.state.score_configs.values(), key=lambda c: (c["createdAt"], c["id"]))
            return self._paged([dict(c) for c in rows], page, limit)
        body = await request.json()
        data_type = body.get("dataType") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not body.get("name") or data_type not in SCORE_CONFIG_TYPES:
            return self._bad(f"name and dataType ({', '.join(SCORE_CONFIG_TYPES)}) are required")
        if data_type == "BOOLEAN" and body.get("categories"):
            return self._bad("categories are autogenerated for boolean configs and cannot be passed")
        now = iso(datetime.now(UTC))
        categories = body.get("categories")
        if data_type == "BOOLEAN":
            categories = [{"value": 1, "label": "True"}, {"value": 0, "label": "False"}]
        config = {
            "id": f"sc-{uuid.uuid4().hex[:12]}",
            "name": body["name"],
            "createdAt": now,
            "updatedAt": now,
            "projectId": PROJECT_ID,
            "dataType": data_type,
            "isArchived": False,
            "minValue": body.get("minValue"),
            "maxValue": body.get("maxValue"),
            "categories": categories,
            "description": body.get("description"),
        }
        with self._lock:
            self.state.score_configs[config["id"]] = config
        return self._ok(config)

    async def _get_score_config(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/score-configs/{configId}")
        if denied:
            return denied
        with self._lock:
            config = self.state.score_configs.get(request.path_params["config_id"])
        return self._ok(dict(config)) if config else self._bad("Score config not found", 404)

    async def _queues(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/annotation-queues")
        if denied:
            return denied
        if request.method == "GET":
            try:
                page, limit = self._page_args(request)
            except (BadRequest, ValueError) as exc:
                return self._bad(str(exc))
            with self._lock:
                rows = sorted(self.state.queues.values(), key=lambda q: (q["createdAt"], q["id"]))
            return self._paged([dict(q) for q in rows], page, limit)
        body = await request.json()
        if not isinstance(body, dict) or not body.get("name"):
            return self._bad("name is required")
        config_ids = body.get("scoreConfigIds")
        if not isinstance(config_ids, list) or not config_ids:
            return self._bad("scoreConfigIds must name at least one score config")
        now = iso(datetime.now(UTC))
        with self._lock:
            unknown = [c for c in config_ids if c not in self.state.score_configs]
            if unknown:
                return self._bad(f"score config(s) not found: {', '.join(map(str, unknown))}")
            queue = {
                "id": f"aq-{uuid.uuid4().hex[:12]}",
                "name": body["name"],
                "description": body.get("description"),
                "scoreConfigIds": list(config_ids),
                "createdAt": now,
                "updatedAt": now,
            }
            self.state.queues[queue["id"]] = queue
        return self._ok(dict(queue))

    async def _get_queue(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/annotation-queues/{queueId}")
        if denied:
            return denied
        with self._lock:
            queue = self.state.queues.get(request.path_params["queue_id"])
        return self._ok(dict(queue)) if queue else self._bad("Annotation queue not found", 404)

    async def _queue_items(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/annotation-queues/{queueId}/items")
        if denied:
            return denied
        queue_id = request.path_params["queue_id"]
        with self._lock:
            if queue_id not in self.state.queues:
                return self._bad("Annotation queue not found", 404)
        if request.method == "GET":
            status = request.query_params.get("status")
            try:
                page, limit = self._page_args(request)
                if status is not None and status not in QUEUE_STATUSES:
                    raise BadRequest(f"status must be one of {', '.join(QUEUE_STATUSES)}")
            except (BadRequest, ValueError) as exc:
                return self._bad(str(exc))
            with self._lock:
                rows = [
                    dict(i)
                    for i in self.state.queue_items.values()
                    if i["queueId"] == queue_id and (status is None or i["status"] == status)
                ]
            rows.sort(key=lambda i: (i["createdAt"], i["id"]), reverse=True)  # newest first, as Langfuse
            return self._paged(rows, page, limit)
        body = await request.json()
        if not isinstance(body, dict) or not body.get("objectId") or body.get("objectType") not in QUEUE_OBJECT_TYPES:
            return self._bad(f"objectId and objectType ({', '.join(QUEUE_OBJECT_TYPES)}) are required")
        status = body.get("status") or "PENDING"
        if status not in QUEUE_STATUSES:
            return self._bad(f"status must be one of {', '.join(QUEUE_STATUSES)}")
        now = iso(datetime.now(UTC))
        item = {
            "id": f"aqi-{uuid.uuid4().hex[:12]}",
            "queueId": queue_id,
            "objectId": str(body["objectId"]),
            "objectType": body["objectType"],
            "status": status,
            "completedAt": now if status == "COMPLETED" else None,
            "createdAt": now,
            "updatedAt": now,
        }
        with self._lock:
            self.state.queue_items[item["id"]] = item
        return self._ok(dict(item))

    async def _queue_item(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/annotation-queues/{queueId}/items/{itemId}")
        if denied:
            return denied
        queue_id, item_id = request.path_params["queue_id"], request.path_params["item_id"]
        body = await request.json() if request.method == "PATCH" else None
        with self._lock:
            item = self.state.queue_items.get(item_id)
            if item is None or item["queueId"] != queue_id:
                return self._bad("Annotation queue item not found", 404)
            if request.method == "DELETE":
                del self.state.queue_items[item_id]
                return self._ok({"success": True, "message": "Item removed from the annotation queue"})
            if request.method == "PATCH":
                status = (body or {}).get("status") if isinstance(body, dict) else None
                if status is not None and status not in QUEUE_STATUSES:
                    return self._bad(f"status must be one of {', '.join(QUEUE_STATUSES)}")
                if status is not None:
                    now = iso(datetime.now(UTC))
                    item.update(status=status, updatedAt=now, completedAt=now if status == "COMPLETED" else None)
            return self._ok(dict(item))

    # -- routes: OpenTelemetry ingestion and experiment items --------------------------------
    async def _otel_traces(self, request: Request) -> Response:
        """OTLP/HTTP ExportTraceServiceRequest, protobuf or JSON, optionally gzip; spans upserted."""
        denied = self._guard(request, "/api/public/otel/v1/traces")
        if denied:
            return denied
        from google.protobuf import json_format
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        raw = await request.body()
        if request.headers.get("content-encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        message = ExportTraceServiceRequest()
        try:
            if request.headers.get("content-type", "").startswith("application/json"):
                json_format.ParseDict(_otlp_json_ids(json.loads(raw)), message)
            else:
                message.ParseFromString(raw)
        except Exception as exc:  # any decoding problem is the client's: 400
            return self._bad(f"invalid OTLP payload: {exc}")
        with self._lock:
            for resource_spans in message.resource_spans:
                resource = {a.key: any_value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        row = _span_row(span, resource)
                        self.state.spans[(row["traceId"], row["spanId"])] = row
            self.upsert_observations(observation_rows(message, PROJECT_ID))
        return self._ok({})

    async def _experiment_items(self, request: Request) -> Response:
        denied = self._guard(request, "/api/public/experiment-items")
        if denied:
            return denied
        q = request.query_params
        try:
            if not q.get("fromStartTime"):
                raise BadRequest("fromStartTime is required")
            since = parse_ts(q["fromStartTime"])
            until = parse_ts(q["toStartTime"]) if q.get("toStartTime") else None
            limit = int(q.get("limit") or 50)
            if not 1 <= limit <= 100:
                raise BadRequest("limit must be between 1 and 100")
            score_limit = int(q.get("scoreLimit") or 50)
            if not 1 <= score_limit <= 50:
                raise BadRequest("scoreLimit must be between 1 and 50")
            groups = {g.strip() for g in (q.get("fields") or "core,dataset").split(",") if g.strip()}
            if groups - EXPERIMENT_ITEM_GROUPS:
                raise BadRequest(f"unknown field group(s): {', '.join(sorted(groups - EXPERIMENT_ITEM_GROUPS))}")
            offset = decode_cursor(q["cursor"]) if q.get("cursor") else 0
        except BadRequest as exc:
            return self._bad(str(exc))
        except (ValueError, KeyError) as exc:
            return self._bad(f"invalid request: {exc}")

        def listed(name: str) -> set[str] | None:
            raw = q.get(name)
            return {v.strip() for v in raw.split(",") if v.strip()} if raw else None

        wanted = {
            "experimentId": listed("experimentId"),
            "experimentName": listed("experimentName"),
            "experimentItemId": listed("experimentItemId"),
            "experimentDatasetId": listed("datasetId"),
        }
        with self._lock:
            items = [_experiment_item(span, self.state) for span in self.state.spans.values() if _is_item_root(span)]
        rows = [
            i
            for i in items
            if parse_ts(i["startTime"]) >= since
            and (until is None or parse_ts(i["startTime"]) < until)
            and all(values is None or i.get(key) in values for key, values in wanted.items())
        ]
        rows.sort(key=lambda i: (i["startTime"], i["id"]), reverse=True)
        page = rows[offset : offset + limit]
        meta: dict[str, Any] = {}
        if offset + limit < len(rows):
            meta["cursor"] = encode_cursor(offset + limit)
        return self._ok({"data": [_project_item(i, groups, score_limit) for i in page], "meta": meta})


# -- observation rows and filters ------------------------------------------------------------
def _normalise_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Store a row as the server holds it: I/O as raw strings, metadata values as strings."""
    row = dict(raw)
    for key in ("input", "output"):
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            row[key] = json.dumps(value, ensure_ascii=False)
    metadata = row.get("metadata")
    if isinstance(metadata, Mapping):
        row["metadata"] = {
            str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in metadata.items()
        }
    row.setdefault("projectId", PROJECT_ID)
    row.setdefault("endTime", None)
    row.setdefault("parentObservationId", None)
    row.setdefault("isRootObservation", not row.get("parentObservationId"))
    row["startTime"] = iso(parse_ts(row["startTime"])) if row.get("startTime") else iso(datetime.now(UTC))
    if row.get("endTime"):
        row["endTime"] = iso(parse_ts(row["endTime"]))
    if row.get("latency") is None and row.get("endTime"):
        row["latency"] = (parse_ts(row["endTime"]) - parse_ts(row["startTime"])).total_seconds()
    return row


def _rows_from_v3(trace: Mapping[str, Any]) -> list[dict[str, Any]]:
    """v3 trace + observations -> v2 rows (trace fields denormalised onto each observation)."""
    rows = []
    for obs in trace.get("observations") or []:
        row = dict(obs)
        row.setdefault("traceId", trace.get("id"))
        row.setdefault("traceName", trace.get("name"))
        row.setdefault("tags", trace.get("tags") or [])
        for key in ("userId", "sessionId", "environment", "release"):
            row.setdefault(key, trace.get(key))
        rows.append(row)
    return rows


def _project_row(row: Mapping[str, Any], groups: set[str], expand: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group in groups:
        for key in FIELD_GROUPS[group]:
            out[key] = row.get(key)
    for key in ALWAYS_PRESENT:
        out.setdefault(key, None)
    if "metadata" in groups and isinstance(out.get("metadata"), Mapping):
        out["metadata"] = {k: v if k in expand or len(v) <= 200 else v[:200] for k, v in out["metadata"].items()}
    if "isRootObservation" in out and out["isRootObservation"] is None:
        out["isRootObservation"] = not row.get("parentObservationId")
    return out


class Condition:
    """One filter condition of the v2 `filter` JSON, evaluated against a stored row."""

    COLUMNS: ClassVar[dict[str, str]] = {
        "id": "id",
        "type": "type",
        "name": "name",
        "traceId": "traceId",
        "startTime": "startTime",
        "endTime": "endTime",
        "environment": "environment",
        "level": "level",
        "version": "version",
        "userId": "userId",
        "sessionId": "sessionId",
        "isRootObservation": "isRootObservation",
        "parentObservationId": "parentObservationId",
        "traceName": "traceName",
        "traceTags": "tags",
        "tags": "tags",
        "metadata": "metadata",
        "promptName": "promptName",
    }

    def __init__(self, spec: Mapping[str, Any]) -> None:
        try:
            self.type = str(spec["type"])
            self.column = str(spec["column"])
            self.operator = str(spec["operator"])
        except KeyError as exc:
            raise BadRequest(f"filter condition misses {exc}") from None
        if self.column not in self.COLUMNS:
            raise BadRequest(f"unknown filter column '{self.column}'")
        self.value = spec.get("value")
        self.key = spec.get("key")
        self.field = self.COLUMNS[self.column]
        self.trace_ids: set[str] | None = None
        if self.column == "traceId" and self.type == "stringOptions" and self.operator == "any of":
            self.trace_ids = {str(v) for v in self.value or []}
        elif self.column == "traceId" and self.type == "string" and self.operator == "=":
            self.trace_ids = {str(self.value)}
        if self.type == "datetime":
            if self.operator not in (">", "<", ">=", "<="):
                raise BadRequest(f"operator '{self.operator}' is not valid for datetime")
            self._ts = iso(parse_ts(str(self.value)))

    def __call__(self, row: Mapping[str, Any]) -> bool:
        value = row.get(self.field)
        t, op = self.type, self.operator
        if t == "datetime":
            if value is None:
                return False
            return {">": value > self._ts, "<": value < self._ts, ">=": value >= self._ts, "<=": value <= self._ts}[op]
        if t == "string":
            text, wanted = str(value or ""), str(self.value)
            ops = {
                "=": text == wanted,
                "contains": wanted in text,
                "does not contain": wanted not in text,
                "starts with": text.startswith(wanted),
                "ends with": text.endswith(wanted),
                "matches": wanted.lower() in text.lower(),
            }
            if op not in ops:
                raise BadRequest(f"operator '{op}' is not valid for string")
            return ops[op]
        if t in ("stringOptions", "categoryOptions"):
            options = {str(v) for v in self.value or []}
            if op == "any of":
                return value in options
            if op == "none of":
                return value not in options
            raise BadRequest(f"operator '{op}' is not valid for {t}")
        if t == "arrayOptions":
            have, options = set(value or []), {str(v) for v in self.value or []}
            if op == "any of":
                return bool(have & options)
            if op == "none of":
                return not have & options
            if op == "all of":
                return options <= have
            raise BadRequest(f"operator '{op}' is not valid for arrayOptions")
        if t == "boolean":
            flag = bool(value) if value is not None else False
            if op == "=":
                return flag == bool(self.value)
            if op == "<>":
                return flag != bool(self.value)
            raise BadRequest(f"operator '{op}' is not valid for boolean")
        if t == "null":
            if op == "is null":
                return value in (None, "")
            if op == "is not null":
                return value not in (None, "")
            raise BadRequest(f"operator '{op}' is not valid for null")
        if t == "stringObject":
            if not self.key:
                raise BadRequest("stringObject filters need a key")
            inner = (value or {}).get(self.key) if isinstance(value, Mapping) else None
            if op == "is set":
                return inner is not None
            if op == "is not set":
                return inner is None
            if op == "=":
                return inner == self.value
            if op == "contains":
                return inner is not None and str(self.value) in inner
            raise BadRequest(f"operator '{op}' is not supported by the fake for stringObject")
        raise BadRequest(f"unknown filter type '{t}'")


def _conditions_from_query(q: Mapping[str, str]) -> list[Condition]:
    """The JSON `filter` wins over individual query parameters (as the spec says)."""
    raw = q.get("filter")
    if raw:
        specs = json.loads(raw)
        if not isinstance(specs, list):
            raise BadRequest("filter must be a JSON array")
        return [Condition(s) for s in specs]
    specs = []
    for param, column in (("name", "name"), ("userId", "userId"), ("sessionId", "sessionId"), ("type", "type")):
        if q.get(param):
            specs.append({"type": "string", "column": column, "operator": "=", "value": q[param]})
    if q.get("traceId"):
        specs.append({"type": "string", "column": "traceId", "operator": "=", "value": q["traceId"]})
    if q.get("environment"):
        specs.append(
            {"type": "stringOptions", "column": "environment", "operator": "any of", "value": [q["environment"]]}
        )
    if q.get("isRootObservation") in ("true", "false"):
        specs.append(
            {
                "type": "boolean",
                "column": "isRootObservation",
                "operator": "=",
                "value": q["isRootObservation"] == "true",
            }
        )
    if q.get("fromStartTime"):
        specs.append({"type": "datetime", "column": "startTime", "operator": ">=", "value": q["fromStartTime"]})
    if q.get("toStartTime"):
        specs.append({"type": "datetime", "column": "startTime", "operator": "<", "value": q["toStartTime"]})
    return [Condition(s) for s in specs]


def _score_problem(item: Any, reject_names: set[str]) -> str | None:
    """Why the server would reject this score, or None (what a 207 reports per score)."""
    if not isinstance(item, dict):
        return "score must be an object"
    if not item.get("name"):
        return "name is required"
    if item["name"] in reject_names:
        return f"score '{item['name']}' rejected by configuration"
    if "value" not in item or item["value"] is None:
        return "value is required"
    if not (item.get("traceId") or item.get("sessionId") or item.get("datasetRunId")):
        return "one of traceId, sessionId or datasetRunId is required"
    if item.get("observationId") and not item.get("traceId"):
        return "observationId requires traceId"
    data_type = str(item.get("dataType") or "NUMERIC").upper()
    value = item["value"]
    if data_type == "NUMERIC" and not isinstance(value, int | float):
        return "NUMERIC scores need a numeric value"
    if data_type == "BOOLEAN" and value not in (0, 1):
        return "BOOLEAN scores need value 0 or 1"
    if data_type in ("CATEGORICAL", "TEXT") and not isinstance(value, str):
        return f"{data_type} scores need a string value"
    env = item.get("environment")
    if env is not None and (not isinstance(env, str) or env.startswith("langfuse") or env != env.lower()):
        return "environment must be lowercase and must not start with 'langfuse'"
    return None


def _score_v3(score: Mapping[str, Any], groups: set[str]) -> dict[str, Any]:
    out = {
        k: score[k]
        for k in (
            "id",
            "projectId",
            "name",
            "value",
            "dataType",
            "source",
            "timestamp",
            "environment",
            "createdAt",
            "updatedAt",
        )
    }
    if "details" in groups:
        out.update(comment=score.get("comment"), configId=score.get("configId"), metadata=score.get("metadata"))
    if "annotation" in groups:
        out.update(authorUserId=score.get("authorUserId"), queueId=score.get("queueId"))
    if "subject" in groups:
        if score.get("observationId"):
            out["subject"] = {"kind": "observation", "id": score["observationId"], "traceId": score.get("traceId")}
        elif score.get("traceId"):
            out["subject"] = {"kind": "trace", "id": score["traceId"]}
        elif score.get("sessionId"):
            out["subject"] = {"kind": "session", "id": score["sessionId"]}
        elif score.get("datasetRunId"):
            out["subject"] = {"kind": "experiment", "id": score["datasetRunId"]}
    return out


def _public_prompt(prompt: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prompt.items() if not k.startswith("_")}


# -- generated data ---------------------------------------------------------------------------
CITIES = ["Lisbon", "Porto", "Madrid", "Paris", "Berlin", "Rome", "Vienna", "Prague"]


def generate_traces(
    n: int,
    *,
    since: datetime,
    until: datetime,
    seed: int = 1,
    trace_name: str = "athena",
    environment: str = "production",
) -> Iterator[dict[str, Any]]:
    """Athena-like traces as v2 observation rows: a root span, a retriever, a recommendation LLM call.

    The recommendation GENERATION's input is a chat prompt whose user message carries the
    prompt variables (`Question:` and `Context:`), so prompt patterns have something to find.
    """
    rng = random.Random(seed)
    span = (until - since).total_seconds()
    for i in range(n):
        start = since + timedelta(seconds=span * (i + 0.5) / max(n, 1))
        trace_id = uuid.UUID(int=rng.getrandbits(128)).hex
        city = CITIES[i % len(CITIES)]
        question = f"What should I visit in {city}? (#{i})"
        docs = [f"{city} guide: museum {k}, old town walk, river view." for k in range(3)]
        answer = f"In {city}, visit museum 0 and take the old town walk [1]."
        root_id, retr_id, gen_id = (uuid.UUID(int=rng.getrandbits(128)).hex[:16] for _ in range(3))
        common = {
            "traceId": trace_id,
            "traceName": trace_name,
            "tags": ["athena", "prod" if i % 2 == 0 else "beta"],
            "environment": environment,
            "userId": f"user-{i % 50}",
            "sessionId": f"session-{i % 200}",
            "release": "1.4.0",
            "level": "DEFAULT",
            "projectId": PROJECT_ID,
        }
        yield {
            **common,
            "id": root_id,
            "type": "SPAN",
            "name": "athena-request",
            "parentObservationId": None,
            "isRootObservation": True,
            "startTime": iso(start),
            "endTime": iso(start + timedelta(seconds=2.5)),
            "input": {"query": question},
            "output": {"answer": answer},
            "metadata": {"channel": "web", "long_note": "x" * 300},
        }
        yield {
            **common,
            "id": retr_id,
            "type": "RETRIEVER",
            "name": "retrieve",
            "parentObservationId": root_id,
            "isRootObservation": False,
            "startTime": iso(start + timedelta(milliseconds=100)),
            "endTime": iso(start + timedelta(milliseconds=400)),
            "input": {"query": question},
            "output": {"documents": [{"content": d} for d in docs]},
            "metadata": {},
        }
        yield {
            **common,
            "id": gen_id,
            "type": "GENERATION",
            "name": "recommendation",
            "parentObservationId": root_id,
            "isRootObservation": False,
            "startTime": iso(start + timedelta(milliseconds=500)),
            "endTime": iso(start + timedelta(seconds=2.4)),
            "input": [
                {"role": "system", "content": "You recommend places to visit. Cite sources as [n]."},
                {"role": "user", "content": f"Question: {question}\nContext: {' | '.join(docs)}"},
            ],
            "output": answer,
            "providedModelName": "gpt-4o-mini",
            "promptName": "athena-recommendation",
            "promptVersion": 3,
            "usageDetails": {"input": 120 + rng.randint(0, 50), "output": 40},
            "metadata": {},
        }


# -- OTLP spans and experiment items ---------------------------------------------------------
EXPERIMENT_ITEM_GROUPS = {"core", "dataset", "io", "metadata", "itemMetadata", "experimentMetadata", "scores"}
EXPERIMENT_ITEM_FIELDS: dict[str, tuple[str, ...]] = {
    "core": (
        "id",
        "traceId",
        "startTime",
        "endTime",
        "level",
        "environment",
        "experimentId",
        "experimentName",
        "experimentItemId",
    ),
    "dataset": ("experimentDatasetId", "experimentItemVersion"),
    "io": ("input", "output", "expectedOutput"),
    "metadata": ("metadata",),
    "itemMetadata": ("experimentItemMetadata",),
    "experimentMetadata": ("experimentMetadata", "experimentDescription"),
}
ATTR = "langfuse."


def _otlp_json_ids(body: Any) -> Any:
    """OTLP/JSON carries trace and span ids as hex; protobuf's JSON mapping expects base64."""
    for resource_spans in body.get("resourceSpans", []) if isinstance(body, dict) else []:
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return body


def _span_row(span: Any, resource: Mapping[str, Any]) -> dict[str, Any]:
    attributes = {a.key: any_value(a.value) for a in span.attributes}
    level = "ERROR" if span.status.code == 2 else str(attributes.get(f"{ATTR}observation.level") or "DEFAULT")
    return {
        "traceId": span.trace_id.hex(),
        "spanId": span.span_id.hex(),
        "parentSpanId": span.parent_span_id.hex() or None,
        "name": span.name,
        "startTime": iso(datetime.fromtimestamp(span.start_time_unix_nano / 1e9, UTC)),
        "endTime": iso(datetime.fromtimestamp(span.end_time_unix_nano / 1e9, UTC)) if span.end_time_unix_nano else None,
        "level": level,
        "environment": str(attributes.get(f"{ATTR}environment") or resource.get(f"{ATTR}environment") or "default"),
        "attributes": attributes,
    }


def _is_item_root(span: Mapping[str, Any]) -> bool:
    """Langfuse's experiment item: the span named as the item's root observation."""
    return span["attributes"].get(f"{ATTR}experiment.item.root_observation_id") == span["spanId"]


def _json_or_raw(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _experiment_item(span: Mapping[str, Any], state: FakeState) -> dict[str, Any]:
    a = span["attributes"]
    prefix = f"{ATTR}observation.metadata."
    metadata = {k[len(prefix) :]: _json_or_raw(v) for k, v in a.items() if k.startswith(prefix)}
    scores = [
        s
        for s in state.scores.values()
        if s.get("traceId") == span["traceId"] and s.get("observationId") in (None, span["spanId"])
    ]
    return {
        "id": span["spanId"],
        "traceId": span["traceId"],
        "startTime": span["startTime"],
        "endTime": span["endTime"],
        "level": span["level"],
        "environment": span["environment"],
        "experimentId": str(a.get(f"{ATTR}experiment.id") or ""),
        "experimentName": str(a.get(f"{ATTR}experiment.name") or ""),
        "experimentItemId": str(a.get(f"{ATTR}experiment.item.id") or ""),
        "experimentDatasetId": a.get(f"{ATTR}experiment.dataset.id"),
        "experimentItemVersion": a.get(f"{ATTR}experiment.item.version"),
        "input": _json_or_raw(a.get(f"{ATTR}observation.input")),
        "output": _json_or_raw(a.get(f"{ATTR}observation.output")),
        "expectedOutput": _json_or_raw(a.get(f"{ATTR}experiment.item.expected_output")),
        "metadata": metadata or None,
        "experimentItemMetadata": _json_or_raw(a.get(f"{ATTR}experiment.item.metadata")),
        "experimentMetadata": _json_or_raw(a.get(f"{ATTR}experiment.metadata")),
        "experimentDescription": a.get(f"{ATTR}experiment.description"),
        "scores": sorted(scores, key=lambda s: (s["timestamp"], s["id"]), reverse=True),
    }


def _project_item(item: Mapping[str, Any], groups: set[str], score_limit: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group in groups | {"core"}:
        for key in EXPERIMENT_ITEM_FIELDS.get(group, ()):
            out[key] = item.get(key)
    if "scores" in groups:
        out["scores"] = [_score_v3(s, {"details", "subject"}) for s in item["scores"][:score_limit]]
    return out
