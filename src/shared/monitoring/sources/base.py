"""The source plug-in point: `fetch(window) -> AsyncIterator[record]`, with a declared ordering.

A source turns a window into raw records (a `Trace`, a table row, a Slack thread) page by page;
extractors turn records into DatasetItems. Sources register by `type` key, or are named by
dotted path in YAML; each validates its own `Params` model at config load.

A source that can read a record in two parts (`reads_in_parts`, the Langfuse source) also
offers `fetch_roots` (light records: ids, timestamps, names, tags), `preview` (the identity of
one, for the ledger and the sampler) and `hydrate` (complete only the chosen ones), so a run
reads in full only what it scores. The defaults make any other source work unchanged: roots
are the complete records and hydrating them changes nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from shared.errors import ConfigError
from shared.evaluation.item import DatasetItem
from shared.monitoring.needs import ExtractorNeeds
from shared.monitoring.window import Window
from shared.registry import Registry, validate_params
from shared.settings import Settings

Ordering = Literal["newest_first", "oldest_first", "unordered"]


class SourceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class InvalidRecord:
    """Yielded in place of a record that cannot be read (no id, bad JSON): counted, never fatal."""

    reason: str
    ref: str = ""


@dataclass
class SourceStats:
    """What a source reports about a fetch: requests made, and whether it stopped early."""

    requests: int = 0
    more_available: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class DataSource(ABC):
    type_key: ClassVar[str] = ""
    ordering: ClassVar[Ordering] = "unordered"
    # Extractor key (or dotted path) used when the config says `extractor: default`; None means the
    # generic field-path extractor (shared.monitoring.extractors) over Trace or mapping records.
    default_extractor: ClassVar[str | None] = None
    # False for sources that read everything unless given explicit since/until (trace files).
    filters_by_default_window: ClassVar[bool] = True
    # True when fetch_roots/preview/hydrate read less than fetch (see the module docstring).
    reads_in_parts: ClassVar[bool] = False
    Params: ClassVar[type[SourceParams]] = SourceParams

    def __init__(self, params: SourceParams, *, settings: Settings, base_dir: Path, key: str | None = None) -> None:
        self.params = params
        self.settings = settings
        self.base_dir = base_dir
        self._key = key
        self.stats = SourceStats()

    @property
    def source_key(self) -> str:
        """The source part of item identity (architecture.md section 3); `source.key` overrides it."""
        return self._key or self.default_key()

    def default_key(self) -> str:
        return self.type_key

    async def check(self) -> None:  # noqa: B027 - optional hook
        """Fail fast (SourceError/ConfigError) before any work, e.g. on bad credentials."""

    @abstractmethod
    def fetch(self, window: Window) -> AsyncIterator[Any]:
        """Yield raw records of the window, page by page (bounded memory)."""

    def plan_reads(  # noqa: B027 - optional hook
        self, needs: ExtractorNeeds | None, *, light_roots: bool, preview_fields: frozenset[str] = frozenset()
    ) -> None:
        """What the run will read of each record (None: everything), and whether roots may be light
        because the run samples before it hydrates (then `preview_fields`: the item fields the
        sampler reads, besides the id)."""

    def fetch_roots(self, window: Window) -> AsyncIterator[Any]:
        """Records enough for dedup and sampling, page by page. Default: the complete records."""
        return self.fetch(window)

    def preview(self, root: Any, item_level: str) -> DatasetItem | None:
        """A root's identity (id, trace id, timestamp, trace name and tags) without hydrating it.

        None means the source cannot tell: the monitor then extracts complete records instead.
        """
        return None

    async def hydrate(self, roots: Sequence[Any]) -> list[Any]:
        """The complete records of these roots, in order. Default: roots are complete already."""
        return list(roots)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""


source_registry: Registry[type[DataSource]] = Registry("source type")
# Built-ins register with @register_source in these modules, imported on first use (their SDKs are heavy).
source_registry.register_lazy("file", "shared.monitoring.sources.file")
source_registry.register_lazy("langfuse", "shared.langfuse.source")
source_registry.register_lazy("slack", "shared.slack.source")

S = TypeVar("S", bound=type[DataSource])


def register_source(key: str) -> Callable[[S], S]:
    """Class decorator: `source: {type: KEY, ...}` builds this DataSource (docs/plugins.md)."""

    def wrap(cls: S) -> S:
        if not cls.type_key:
            cls.type_key = key
        source_registry.register(key, cls)
        return cls

    return wrap


def build_source(
    type_: str, params: dict[str, Any], *, settings: Settings, base_dir: Path, key: str | None = None
) -> DataSource:
    cls = source_registry.resolve(type_, field="source.type")
    if not (isinstance(cls, type) and issubclass(cls, DataSource)):
        raise ConfigError(f"'{type_}' is not a DataSource class", field="source.type")
    parsed = validate_params(cls.Params, params, field="source", also_valid=("type", "key"))
    return cls(parsed, settings=settings, base_dir=base_dir, key=key)
