"""`source.type: langfuse`: traces of a window, read in bulk from the v2 observations API.

Langfuse v4 is observation-centric: SDK 5 has no trace list, and the v3 trace endpoints are gone
from Langfuse Cloud. So a trace is read as the set of observations sharing a `traceId`.

DATAFLOW (requests grow with pages, never with traces; memory holds a few pages):
  1. fetch_roots  GET /api/public/v2/observations  filter = window + monitor filters +
                  isRootObservation (or name = observation_name), cursor pages; the next page is
                  requested while this one is used. Light (ROOT_GROUPS, 1,000 a page) when the
                  monitor samples before hydrating, else with the field groups the extractor uses.
  2. hydrate      per `child_batch` chosen traces: GET ... filter = traceId any of <ids> and
                  isRootObservation = false (children never re-read the root), narrowed to the
                  names/types the extractor declares, none at all when it needs only the root;
                  light roots are re-read once with their I/O. Up to `concurrency` queries at once
                  (halved by each 429; the retry waits Retry-After).
  3. group rows by traceId -> `Trace` (root observation carries the trace's I/O)
`fetch` (complete traces) runs 1-3 with pages hydrating ahead of the consumer.
What to read comes from the extractor's `ExtractorNeeds` (`plan_reads`; see `read_plan`).

Every call goes through the SDK's HTTP client (see `read_observations`) in a worker thread, with
retries on 429/5xx/timeouts honouring Retry-After (`shared.langfuse.client.call_api`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import orjson
from langfuse import Langfuse
from langfuse.api.core import ApiError
from pydantic import Field, ValidationError, field_validator

from shared.errors import ConfigError, SourceError, TransientError
from shared.evaluation.item import DatasetItem
from shared.langfuse.client import CallStats, call_api, check_connection, make_client
from shared.langfuse.limiter import AdaptiveLimiter
from shared.monitoring.needs import ExtractorNeeds
from shared.monitoring.read_ahead import map_ahead, read_ahead
from shared.monitoring.sources.base import DataSource, InvalidRecord, SourceParams, register_source
from shared.monitoring.window import Window, iso
from shared.registry import import_dotted
from shared.traces import Trace, parse_time

FIELD_GROUP_ORDER = ("core", "basic", "time", "io", "metadata", "model", "usage", "prompt", "metrics", "trace_context")
ALL_FIELDS = ",".join(FIELD_GROUP_ORDER)
# What every root carries (ids, times, names, tags: all dedup and sampling read) and every child.
ROOT_GROUPS = frozenset({"core", "basic", "trace_context"})
CHILD_GROUPS = frozenset({"core", "basic"})
# A light root for a sampler that reads only ids and timestamps: the `core` group alone.
LIGHT_GROUPS = frozenset({"core"})
CORE_PREVIEW_FIELDS = frozenset({"id", "trace_id", "observation_id", "source_timestamp"})
# Trace ids per bulk child query: 100 ids of 32 hex chars keep the URL near 5 kB.
DEFAULT_CHILD_BATCH = 100
MAX_PAGE = 1000  # the v2 API's largest page


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
    page_size: int = Field(
        default=MAX_PAGE, ge=1, le=MAX_PAGE, description="root observations per page (fewer, larger pages: fewer reads)"
    )
    sample_page_size: int = Field(
        default=MAX_PAGE, ge=1, le=MAX_PAGE, description="light root observations per page (sampled before hydration)"
    )
    concurrency: int = Field(default=4, ge=1, le=64, description="observation queries in flight (halved on a 429)")
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


@dataclass(frozen=True)
class ReadPlan:
    """What one run reads: field groups of each query, and which children (see `read_plan`)."""

    root_fields: str  # the root page read
    full_root_fields: str  # a root re-read at hydration (only when the root page was light)
    light_roots: bool
    child_fields: str | None  # None: no child query at all
    child_filters: tuple[tuple[dict[str, Any], ...], ...]  # extra conditions, one child query each
    page_size: int

    @property
    def all_children(self) -> bool:
        return self.child_fields is not None and self.child_filters == ((),)


def read_plan(
    params: LangfuseSourceParams,
    needs: ExtractorNeeds | None,
    *,
    light_roots: bool,
    preview_fields: frozenset[str] = frozenset(),
) -> ReadPlan:
    """Field groups and child queries for what the extractor declares it needs (None: everything).

    Roots carry ROOT_GROUPS (ids, times, names, tags). A light root page (the monitor samples
    before it reads the rest) carries only what the sampler reads, 1,000 a page: the `core`
    group (ids, start time) unless it reads names, tags or sessions; the chosen roots are re-read
    with the groups the extractor uses, in bulk.
    """
    configured = {g.strip() for g in params.fields.split(",") if g.strip()}
    used = configured if needs is None or needs.field_groups is None else set(needs.field_groups)
    full_root = ROOT_GROUPS | used
    child_fields: str | None = _fields(CHILD_GROUPS | used)
    filters: tuple[tuple[dict[str, Any], ...], ...] = ((),)
    if needs is not None and needs.root_only and not params.observation_name:
        child_fields = None
    elif needs is not None and not needs.all_children:
        named = []
        if needs.observation_names:
            named.append(
                (
                    {
                        "type": "stringOptions",
                        "column": "name",
                        "operator": "any of",
                        "value": sorted(needs.observation_names),
                    },
                )
            )
        if needs.observation_types:
            named.append(
                (
                    {
                        "type": "stringOptions",
                        "column": "type",
                        "operator": "any of",
                        "value": sorted(needs.observation_types),
                    },
                )
            )
        filters = tuple(named)
    light = LIGHT_GROUPS if preview_fields <= CORE_PREVIEW_FIELDS else ROOT_GROUPS
    return ReadPlan(
        root_fields=_fields(light if light_roots else full_root),
        full_root_fields=_fields(full_root),
        light_roots=light_roots,
        child_fields=child_fields,
        child_filters=filters,
        page_size=params.sample_page_size if light_roots else params.page_size,
    )


def _fields(groups: Iterable[str]) -> str:
    wanted = set(groups)
    known = [g for g in FIELD_GROUP_ORDER if g in wanted]
    return ",".join(known + sorted(wanted - set(FIELD_GROUP_ORDER)))


def _any_of(column: str, values: Sequence[str]) -> dict[str, Any]:
    return {"type": "stringOptions", "column": column, "operator": "any of", "value": list(values)}


def _is_root(flag: bool) -> dict[str, Any]:
    return {"type": "boolean", "column": "isRootObservation", "operator": "=", "value": flag}


class ObservationReader:
    """Pages through v2 observations; every call bounded by the adaptive limiter and counted."""

    def __init__(
        self,
        client: Langfuse,
        params: LangfuseSourceParams,
        stats: CallStats | None = None,
        limiter: AdaptiveLimiter | None = None,
    ) -> None:
        self.client = client
        self.params = params
        self.stats = stats or CallStats()
        self.limiter = limiter or AdaptiveLimiter(params.concurrency)
        self.response_bytes = 0

    async def page(
        self, conditions: Sequence[dict[str, Any]], cursor: str | None, limit: int, fields: str | None = None
    ) -> ObservationPage:
        query = {
            "fields": fields or self.params.fields,
            "expandMetadata": ",".join(self.params.expand_metadata) or None,
            "limit": limit,
            "cursor": cursor,
            "filter": json.dumps(list(conditions)),
        }
        loop = asyncio.get_running_loop()
        limiter = self.limiter

        def read(client: Langfuse, query: dict[str, Any], request_options: Any = None) -> ObservationPage:
            try:
                return read_observations(client, query, request_options)
            except ApiError as exc:
                if exc.status_code == 429:  # fewer calls at once from now on; call_api waits Retry-After
                    loop.call_soon_threadsafe(limiter.rate_limited)
                raise

        try:
            async with limiter:
                page: ObservationPage = await call_api(
                    read,
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
        self.response_bytes += page.response_bytes
        return page

    async def read_all(self, conditions: Sequence[dict[str, Any]], fields: str) -> list[dict[str, Any]]:
        """Every page of one query (1,000 rows a page)."""
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self.page(conditions, cursor, MAX_PAGE, fields)
            rows.extend(page.rows)
            cursor = page.cursor
            if not cursor:
                return rows


@register_source("langfuse")
class LangfuseDataSource(DataSource):
    """Traces of the window, newest first (the v2 API's order), read in two parts.

    `fetch_roots` pages through the selected observations (roots, or the named observations of an
    observation-level monitor); `hydrate` completes chosen ones in bulk; `fetch` does both with the
    reads overlapped (complete traces, for notebooks and monitors that cannot sample on roots).
    """

    type_key = "langfuse"
    ordering = "newest_first"
    reads_in_parts = True
    Params: ClassVar[type[SourceParams]] = LangfuseSourceParams

    _client: Langfuse | None = None
    _needs: ExtractorNeeds | None = None
    _light_roots: bool = False
    _preview_fields: frozenset[str] = frozenset()
    _reader: ObservationReader | None = None
    _reader_loop: asyncio.AbstractEventLoop | None = None
    _pages: int = 0

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

    # -- what to read --------------------------------------------------------------------
    def plan_reads(
        self, needs: ExtractorNeeds | None, *, light_roots: bool, preview_fields: frozenset[str] = frozenset()
    ) -> None:
        self._needs = needs
        self._light_roots = light_roots
        self._preview_fields = preview_fields

    @property
    def plan(self) -> ReadPlan:
        return read_plan(
            self.lf_params, self._needs, light_roots=self._light_roots, preview_fields=self._preview_fields
        )

    def _reader_now(self) -> ObservationReader:
        """One reader (stats, limiter) per event loop: a monitor object may run in several loops."""
        loop = asyncio.get_running_loop()
        if self._reader is None or self._reader_loop is not loop:
            self._reader = ObservationReader(self.client, self.lf_params, CallStats())
            self._reader_loop = loop
            self._pages = 0
        return self._reader

    def _publish_stats(self) -> None:
        reader = self._reader
        if reader is None:
            return
        self.stats.requests = reader.stats.requests
        self.stats.extra.update(
            pages=self._pages,
            retries=reader.stats.retries,
            response_bytes=reader.response_bytes,
            rate_limited=reader.limiter.rate_limited_count,
            concurrency=reader.limiter.limit,
        )

    # -- reading -------------------------------------------------------------------------
    async def fetch_roots(self, window: Window) -> AsyncIterator[dict[str, Any] | InvalidRecord]:
        """The window's selected rows, page by page, the next page requested while this one is used."""
        async with contextlib.aclosing(read_ahead(self._root_pages(window), depth=1)) as pages:
            async for rows in pages:
                for row in rows:
                    yield (
                        row
                        if row.get("traceId")
                        else InvalidRecord("observation without traceId", str(row.get("id") or ""))
                    )

    async def _root_pages(self, window: Window) -> AsyncIterator[list[dict[str, Any]]]:
        params = self.lf_params
        plan = self.plan
        reader = self._reader_now()
        conditions = window_filter(params, window)
        cursor: str | None = None
        taken = 0
        while True:
            page = await reader.page(conditions, cursor, plan.page_size, plan.root_fields)
            self._pages += 1
            rows = page.rows
            if params.max_traces is not None and taken + len(rows) >= params.max_traces:
                more = taken + len(rows) > params.max_traces or page.cursor is not None
                rows = rows[: params.max_traces - taken]
                self.stats.more_available = self.stats.more_available or more
                cursor = None
            else:
                cursor = page.cursor
            taken += len(rows)
            self._publish_stats()
            yield rows
            if not cursor:
                return

    def preview(self, root: Any, item_level: str) -> DatasetItem | None:
        """The identity of a root row (what the ledger and samplers read), before it is hydrated."""
        if not isinstance(root, dict):
            return None
        trace_id = root.get("traceId")
        observation_id = root.get("id")
        item_id = observation_id if item_level == "observation" else trace_id
        try:
            return DatasetItem(
                id=str(item_id or ""),
                trace_id=str(trace_id) if trace_id else None,
                observation_id=str(observation_id) if item_level == "observation" and observation_id else None,
                session_id=str(root["sessionId"]) if root.get("sessionId") else None,
                source_timestamp=parse_time(root.get("startTime")),
                metadata={
                    "trace_name": root.get("traceName"),
                    "tags": root.get("tags") or [],
                    "environment": root.get("environment"),
                    "user_id": root.get("userId"),
                },
            )
        except ValidationError:
            return None

    async def hydrate(self, roots: Sequence[Any]) -> list[Any]:
        """Chosen root rows -> complete traces (in order): their children and, for light roots, their I/O.

        One query per `child_batch` traces (and per declared name/type filter), up to
        `source.concurrency` at once.
        """
        rows = [r for r in roots if isinstance(r, dict)]
        trace_ids = list(dict.fromkeys(str(r["traceId"]) for r in rows if r.get("traceId")))
        batches = [
            trace_ids[i : i + self.lf_params.child_batch] for i in range(0, len(trace_ids), self.lf_params.child_batch)
        ]
        fetched = await asyncio.gather(*(self._hydration_rows(batch) for batch in batches))
        self._publish_stats()
        return _assemble(
            roots, [row for part in fetched for row in part], self.patterns(), self.lf_params.observation_name
        )

    async def _hydration_rows(self, trace_ids: list[str]) -> list[dict[str, Any]]:
        plan = self.plan
        reader = self._reader_now()
        ids = _any_of("traceId", trace_ids)
        queries: list[tuple[list[dict[str, Any]], str]] = []
        if self.lf_params.observation_name:  # observation-level: the whole trace around the targets
            queries.append(
                ([ids], _fields({*plan.full_root_fields.split(","), *(plan.child_fields or "core").split(",")}))
            )
        elif plan.light_roots and plan.all_children:  # roots and children in one query
            queries.append(([ids], _fields({*plan.full_root_fields.split(","), *str(plan.child_fields).split(",")})))
        else:
            if plan.light_roots:
                queries.append(([ids, _is_root(True)], plan.full_root_fields))
            if plan.child_fields is not None:
                queries.extend(([ids, _is_root(False), *extra], plan.child_fields) for extra in plan.child_filters)
        parts = await asyncio.gather(*(reader.read_all(conditions, fields) for conditions, fields in queries))
        return [row for part in parts for row in part]

    async def fetch(self, window: Window) -> AsyncIterator[Trace | InvalidRecord]:
        """Complete traces: root pages read ahead, up to `concurrency` pages hydrating at once, in order."""
        params = self.lf_params
        pages = read_ahead(self._root_pages(window), depth=1)
        ahead = max(1, params.concurrency * params.child_batch // params.page_size)  # keep `concurrency` queries busy
        async with contextlib.aclosing(map_ahead(pages, self.hydrate, ahead=ahead)) as traces:
            async for page in traces:
                for record in page:
                    yield record

    async def aclose(self) -> None:
        self._client = None
        self._reader = None
        self._reader_loop = None


def _assemble(
    selected: Sequence[Any], fetched: Iterable[dict[str, Any]], patterns: Any, observation_level: str | None
) -> list[Any]:
    """Selected rows + the rows read for them -> one Trace per selected row, in order.

    A row read at hydration replaces the selected row of the same id (it carries more field
    groups); a selected row the hydration did not return (late ingestion) is kept as it was.
    """
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for row in fetched:
        grouped.setdefault(str(row.get("traceId") or ""), {})[str(row.get("id"))] = row
    out: list[Any] = []
    for row in selected:
        if not isinstance(row, dict):
            out.append(row)  # an InvalidRecord stays where it was
            continue
        trace_id = row.get("traceId")
        if not trace_id:
            out.append(InvalidRecord("observation without traceId", str(row.get("id") or "")))
            continue
        rows = grouped.setdefault(str(trace_id), {})
        rows.setdefault(str(row.get("id")), row)
        target = str(row.get("id")) if observation_level else None
        out.append(Trace.from_observations(list(rows.values()), patterns, target_observation_id=target))
    return out


def traces_from_rows(rows: Iterable[dict[str, Any]], patterns: Any = None) -> list[Trace]:
    """Group v2 rows by traceId (any order) into traces."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row.get("traceId") or ""), []).append(row)
    return [Trace.from_observations(group, patterns) for tid, group in grouped.items() if tid]
