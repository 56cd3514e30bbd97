"""What an extractor reads from a trace, so a source can fetch exactly that and nothing more.

An extractor declares its needs in a `needs` attribute holding an `ExtractorNeeds` (a function
extractor gets one with the `@declare_needs(...)` decorator). A source that reads traces in parts
(the Langfuse source) then skips the child query when only the root is needed, filters children
by name or type when those are declared, and asks only for the field groups used; and a monitor
may sample on root previews first and hydrate only the chosen items, when the extractor keeps the
source's ids. An extractor that declares nothing gets everything, whole records, read before
sampling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.errors import ConfigError


def _frozen(values: Iterable[str] | None) -> frozenset[str]:
    return frozenset(values or ())


@dataclass(frozen=True)
class ExtractorNeeds:
    """What of a trace an extractor reads.

    root_only: only the root observation (the trace's own input, output, metadata, ids).
    observation_names / observation_types: besides the root, only children with one of these
    names or (upper-case) types; both empty and not root_only means every child.
    field_groups: Langfuse v2 field groups read (`core`, `basic`, `io`, `metadata`, ...);
    None means the source's configured groups.
    keeps_source_ids: the item's id is the record's own id (the trace id; the observation id at
    observation level), so a monitor may choose items on root previews before extracting them.
    """

    root_only: bool = False
    observation_names: frozenset[str] = field(default_factory=frozenset)
    observation_types: frozenset[str] = field(default_factory=frozenset)
    field_groups: frozenset[str] | None = None
    keeps_source_ids: bool = True

    def __post_init__(self) -> None:  # accept any iterable (a set, a list) and store frozensets
        object.__setattr__(self, "observation_names", _frozen(self.observation_names))
        object.__setattr__(self, "observation_types", frozenset(t.upper() for t in self.observation_types or ()))
        if self.field_groups is not None:
            object.__setattr__(self, "field_groups", _frozen(self.field_groups))

    @property
    def all_children(self) -> bool:
        """Every child observation is needed (nothing declared narrows them)."""
        return not self.root_only and not self.observation_names and not self.observation_types

    def merge(self, other: ExtractorNeeds) -> ExtractorNeeds:
        """Needs of two readers together (e.g. an extractor and a sampler's field)."""
        if self.all_children or other.all_children:
            names: frozenset[str] = frozenset()
            types: frozenset[str] = frozenset()
        else:
            names = self.observation_names | other.observation_names
            types = self.observation_types | other.observation_types
        groups = (
            None if self.field_groups is None or other.field_groups is None else self.field_groups | other.field_groups
        )
        return ExtractorNeeds(
            root_only=self.root_only and other.root_only,
            observation_names=names,
            observation_types=types,
            field_groups=groups,
            keeps_source_ids=self.keeps_source_ids and other.keeps_source_ids,
        )


EVERYTHING = ExtractorNeeds()


def needs_of(extractor: Any) -> ExtractorNeeds | None:
    """The needs an extractor declares in its `needs` attribute, or None when it declares none."""
    declared = getattr(extractor, "needs", None)
    if declared is None or isinstance(declared, ExtractorNeeds):
        return declared
    name = getattr(extractor, "__qualname__", type(extractor).__qualname__)
    raise ConfigError(
        f"extractor {name} declares needs of type {type(declared).__name__}; "
        "it must be an ExtractorNeeds (shared.monitoring.needs), or nothing",
        field="extractor",
    )


E = TypeVar("E", bound=Callable[..., Any])


def declare_needs(needs: ExtractorNeeds) -> Callable[[E], E]:
    """Decorator: `@declare_needs(ExtractorNeeds(...))` on a `record -> DatasetItem` function sets
    its `needs`, so a source reads only that and a monitor can sample before it reads."""

    def wrap(extractor: E) -> E:
        setattr(extractor, "needs", needs)  # noqa: B010 - a function has no declared `needs` attribute
        return extractor

    return wrap
