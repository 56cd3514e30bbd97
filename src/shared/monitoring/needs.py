"""What an extractor reads from a trace, so a source can fetch exactly that and nothing more.

An extractor declares its needs with a `needs` attribute (an `ExtractorNeeds`, or a method
returning one). A source that reads traces in parts (the Langfuse source) then skips the child
query when only the root is needed, filters children by name or type when those are declared,
and asks only for the field groups used. An extractor that declares nothing gets everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


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
    """

    root_only: bool = False
    observation_names: frozenset[str] = field(default_factory=frozenset)
    observation_types: frozenset[str] = field(default_factory=frozenset)
    field_groups: frozenset[str] | None = None

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
        )


EVERYTHING = ExtractorNeeds()


def needs_of(extractor: Any) -> ExtractorNeeds | None:
    """The needs an extractor declares (attribute or method `needs`), or None when it declares none.

    Any object with `root_only`, `observation_names` and `observation_types` (and optionally
    `field_groups`) counts, so extractors can declare needs without importing this module.
    """
    declared = getattr(extractor, "needs", None)
    if callable(declared) and not hasattr(declared, "root_only"):
        declared = declared()
    if declared is None or isinstance(declared, ExtractorNeeds):
        return declared
    if not all(hasattr(declared, name) for name in ("root_only", "observation_names", "observation_types")):
        return None
    return ExtractorNeeds(
        root_only=bool(declared.root_only),
        observation_names=declared.observation_names,
        observation_types=declared.observation_types,
        field_groups=getattr(declared, "field_groups", None),
    )
