"""`source.type: langfuse`: complete traces of a window, read in bulk from the v2 observations API.

Langfuse v4 is observation-centric: SDK 5 has no trace list, and the v3 trace endpoints are gone
from Langfuse Cloud. So a trace is read as the set of observations sharing a `traceId`.

DATAFLOW (per page; requests grow with pages, never with traces; memory holds one page):
  1. GET /api/public/v2/observations  filter = window + monitor filters + isRootObservation
     (or name = observation_name for observation-level monitors), cursor pagination
  2. GET /api/public/v2/observations  filter = traceId any of <the page's trace ids>
     (chunked so the URL stays short), every page of it
  3. group rows by traceId -> `Trace` (root observation carries the trace's I/O) -> yield

Every call goes through the SDK's HTTP client (see `read_observations`) in a worker thread, with retries
on 429/5xx/timeouts honouring Retry-After (`shared.langfuse.client.call_api`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import orjson
from langfuse import Langfuse
from langfuse.api.core import ApiError
from pydantic import Field, field_validator

from shared.errors import ConfigError, SourceError, TransientError
from shared.langfuse.client import CallStats, call_api, check_connection, make_client
from shared.langfuse.trace import Trace
from shared.monitoring.sources.base import DataSource, InvalidRecord, SourceParams
from shared.monitoring.window import Window, iso
from shared.registry import import_dotted

ALL_FIELDS = "core,basic,time,io,metadata,model,usage,prompt,metrics,trace_context"
# Trace ids per bulk child query: 100 ids of 32 hex chars keep the URL near 5 kB.
DEFAULT_CHILD_BATCH = 100


class LangfuseSourceParams(SourceParams):
    """The monitor's view of Langfuse: which traces (or observations) of the window to score."""

    trace_name: str | None = Field(default=None, description="only traces with this name")
    tags: list[str] = Field(default_factory=list, description="only traces carrying these tags")
    tags_match: Literal["any", "all"] = Field(default="any", description="any or all of `tags`")
    environment: list[str] = Field(default_factory=list, description="only these environments")
    user_id: str | None = None
    session_id: str | None = None
    observation_name: str | None = Field(
        default=None, description="observation-level monitors: score the observations with this name"
    )
    observation_type: str | None = Field(default=None, description="with observation_name: e.g. GENERATION")
    fields: str = Field(default=ALL_FIELDS, description="v2 field groups to read")
    expand_metadata: list[str] = Field(
        default_factory=list, description="metadata keys returned in full (others are cut at 200 characters)"
    )
    page_size: int = Field(default=100, ge=1, le=1000, description="root observations per page")
    child_batch: int = Field(default=DEFAULT_CHILD_BATCH, ge=1, le=1000, description="trace ids per bulk query")
    max_traces: int | None = Field(default=None, gt=0, description="stop after this many (more_available is set)")
    max_retries: int = Field(default=5, ge=0, le=20)
    retry_initial_s: float = Field(default=0.5, ge=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    prompt_patterns: str | None = Field(
        default=None, description="dotted path of a PromptPatternsBase subclass (Step.variables)"
    )

    @field_validator("environment", "tags", "expand_metadata", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def window_filter(params: LangfuseSourceParams, window: Window) -> list[dict[str, Any]]:
    """The v2 JSON filter selecting what one run scores (roots, or the named observations)."""
    conditions: list[dict[str, Any]] = [
        {"type": "datetime", "column": "startTime", "operator": ">=", "value": iso(window.since)},
        {"type": "datetime", "column": "startTime", "operator": "<", "value": iso(window.until)},
    ]
    if params.observation_name:
        conditions.append({"type": "string", "column": "name", "operator": "=", "value": params.observation_name})
        if params.observation_type:
            conditions.append(
                {"type": "string", "column": "type", "operator": "=", "value": params.observation_type.upper()}
            )
    else:
        conditions.append({"type": "boolean", "column": "isRootObservation", "operator": "=", "value": True})
    conditions.extend(trace_filters(params))
    return conditions


def trace_filters(params: LangfuseSourceParams) -> list[dict[str, Any]]:
    """Trace-level filters (denormalised onto every observation by Langfuse v4)."""
    conditions: list[dict[str, Any]] = []
    if params.trace_name:
        conditions.append({"type": "string", "column": "traceName", "operator": "=", "value": params.trace_name})
    if params.tags:
        operator = "all of" if params.tags_match == "all" else "any of"
        conditions.append({"type": "arrayOptions", "column": "tags", "operator": operator, "value": params.tags})
    if params.environment:
        conditions.append(
            {"type": "stringOptions", "column": "environment", "operator": "any of", "value": params.environment}
        )
    if params.user_id:
        conditions.append({"type": "string", "column": "userId", "operator": "=", "value": params.user_id})
    if params.session_id:
        conditions.append({"type": "string", "column": "sessionId", "operator": "=", "value": params.session_id})
    return conditions


OBSERVATIONS_PATH = "api/public/v2/observations"


@dataclass
class ObservationPage:
    """One page of v2 observations as plain camelCase dicts (the shape `Trace.from_observations` reads)."""

    rows: list[dict[str, Any]]
    cursor: str | None
    response_bytes: int = 0


def read_observations(client: Langfuse, query: dict[str, Any], request_options: Any = None) -> ObservationPage:
    """One `GET /api/public/v2/observations` through the SDK's own HTTP client, parsed with orjson.

    The SDK's typed call (`api.observations.get_many`) validates every row into a pydantic model,
    walking type hints field by field: about 0.25 ms of CPU per observation, most of a run's
    client CPU. The same request through the SDK's HTTP client (its auth, base URL, headers and
    timeout) with the body parsed by orjson costs about 0.02 ms per observation. An SDK without
    that client falls back to the typed call.
    """
    http = getattr(getattr(client.api, "_client_wrapper", None), "httpx_client", None)
    if http is None:
        typed = client.api.observations.get_many(
            fields=query.get("fields"),
            expand_metadata=query.get("expandMetadata"),
            limit=query.get("limit"),
            cursor=query.get("cursor"),
            filter=query.get("filter"),
            request_options=request_options,
        )
        return ObservationPage(rows_of(typed), typed.meta.cursor)
    response = http.request(OBSERVATIONS_PATH, method="GET", params=query, request_options=request_options)
    if not 200 <= response.status_code < 300:
        try:
            body: Any = orjson.loads(response.content)
        except ValueError:
            body = response.text
        raise ApiError(status_code=response.status_code, headers=dict(response.headers), body=body)
    page = orjson.loads(response.content)
    return ObservationPage(page.get("data") or [], (page.get("meta") or {}).get("cursor"), len(response.content))


def rows_of(response: Any) -> list[dict[str, Any]]:
    """An SDK `ObservationsV2Response` -> camelCase dicts (for callers holding the typed response)."""
    return [{_camel(k): v for k, v in obs.model_dump(exclude_unset=True).items()} for obs in response.data]


@functools.cache
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class ObservationReader:
    """Pages through v2 observations with one filter; shared by the source and TraceCollection."""

    def __init__(
        self,
        client: Langfuse,
        params: LangfuseSourceParams,
        stats: CallStats | None = None,
    ) -> None:
        self.client = client
        self.params = params
        self.stats = stats or CallStats()

    async def page(self, conditions: Sequence[dict[str, Any]], cursor: str | None, limit: int) -> ObservationPage:
        query = {
            "fields": self.params.fields,
            "expandMetadata": ",".join(self.params.expand_metadata) or None,
            "limit": limit,
            "cursor": cursor,
            "filter": json.dumps(list(conditions)),
        }
        try:
            return await call_api(
                read_observations,
                self.client,
                query,
                attempts=self.params.max_retries + 1,
                initial_wait=self.params.retry_initial_s,
                max_wait=self.params.retry_max_s,
                stats=self.stats,
            )
        except TransientError as exc:
            raise SourceError(
                f"Langfuse observations read failed after {self.params.max_retries} retries: {exc}"
            ) from None
        except ApiError as exc:
            if exc.status_code in (401, 403):
                raise ConfigError(
                    f"Langfuse rejected the credentials (HTTP {exc.status_code})", field="LANGFUSE_SECRET_KEY"
                ) from None
            raise SourceError(f"Langfuse observations read failed: HTTP {exc.status_code}: {exc.body}") from None

    async def observations_of(self, trace_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Every observation of these traces, in bulk: one query per chunk of ids, all its pages."""
        rows: list[dict[str, Any]] = []
        size = self.params.child_batch
        for start in range(0, len(trace_ids), size):
            chunk = list(trace_ids[start : start + size])
            conditions = [{"type": "stringOptions", "column": "traceId", "operator": "any of", "value": chunk}]
            cursor: str | None = None
            while True:
                page = await self.page(conditions, cursor, 1000)
                rows.extend(page.rows)
                cursor = page.cursor
                if not cursor:
                    break
        return rows


class LangfuseDataSource(DataSource):
    """Complete traces of the window, page by page, newest first (the v2 API's order)."""

    type_key = "langfuse"
    ordering = "newest_first"
    Params: ClassVar[type[SourceParams]] = LangfuseSourceParams

    _client: Langfuse | None = None

    @property
    def lf_params(self) -> LangfuseSourceParams:
        assert isinstance(self.params, LangfuseSourceParams)
        return self.params

    def default_key(self) -> str:
        return "langfuse"

    @property
    def client(self) -> Langfuse:
        if self._client is None:
            self._client = make_client(self.settings)
        return self._client

    async def check(self) -> None:
        """Bad credentials -> ConfigError, unavailable after the source's retries -> SourceError, before any work."""
        import asyncio

        params = self.lf_params
        await asyncio.to_thread(
            check_connection,
            self.client,
            attempts=params.max_retries + 1,
            initial_wait=params.retry_initial_s,
            max_wait=params.retry_max_s,
        )
        self.patterns()  # a bad dotted path is a config error now, not mid-run

    def patterns(self) -> Any:
        path = self.lf_params.prompt_patterns
        if not path:
            return None
        found = import_dotted(path, field="source.prompt_patterns")
        return found() if isinstance(found, type) else found

    async def fetch(self, window: Window) -> AsyncIterator[Trace | InvalidRecord]:
        params = self.lf_params
        stats = CallStats()
        reader = ObservationReader(self.client, params, stats)
        patterns = self.patterns()
        conditions = window_filter(params, window)
        cursor: str | None = None
        yielded = 0
        pages = 0
        while True:
            page = await reader.page(conditions, cursor, params.page_size)
            pages += 1
            cursor = page.cursor
            selected = page.rows
            if params.max_traces is not None and yielded + len(selected) > params.max_traces:
                selected = selected[: params.max_traces - yielded]
                self.stats.more_available = True
            async for record in self._complete(reader, selected, patterns):
                yielded += 1
                yield record
            self._publish_stats(stats, pages)
            if self.stats.more_available:
                return
            if not cursor:
                return
            if params.max_traces is not None and yielded >= params.max_traces:
                self.stats.more_available = True
                self._publish_stats(stats, pages)
                return

    def _publish_stats(self, stats: CallStats, pages: int) -> None:
        self.stats.requests = stats.requests
        self.stats.extra.update(pages=pages, retries=stats.retries)

    async def _complete(
        self, reader: ObservationReader, selected: list[dict[str, Any]], patterns: Any
    ) -> AsyncIterator[Trace | InvalidRecord]:
        """Selected rows (roots or named observations) -> complete traces, in the page's order."""
        trace_ids: list[str] = []
        for row in selected:
            trace_id = row.get("traceId")
            if trace_id and trace_id not in trace_ids:
                trace_ids.append(trace_id)
        grouped: dict[str, list[dict[str, Any]]] = {tid: [] for tid in trace_ids}
        for row in await reader.observations_of(trace_ids) if trace_ids else []:
            bucket = grouped.get(row.get("traceId") or "")
            if bucket is not None:
                bucket.append(row)
        seen: dict[str, set[str]] = {}
        for row in selected:
            trace_id = row.get("traceId")
            if not trace_id:
                yield InvalidRecord("observation without traceId", str(row.get("id") or ""))
                continue
            rows = grouped[trace_id]
            ids = seen.setdefault(trace_id, {r["id"] for r in rows})
            if row["id"] not in ids:  # selected row not returned by the bulk read (late ingestion)
                rows.append(row)
                ids.add(row["id"])
            target = row["id"] if self.lf_params.observation_name else None
            yield Trace.from_observations(rows, patterns, target_observation_id=target)

    async def aclose(self) -> None:
        self._client = None


def traces_from_rows(rows: Iterable[dict[str, Any]], patterns: Any = None) -> list[Trace]:
    """Group v2 rows by traceId (any order) into traces."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row.get("traceId") or ""), []).append(row)
    return [Trace.from_observations(group, patterns) for tid, group in grouped.items() if tid]
