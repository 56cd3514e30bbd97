"""Shared metrics. Importing this package registers them all (see `load_builtin_metrics`).

The heuristic modules are imported by name. Any other public module of this package (the LLM
judge, `judge*.py`, added separately) is imported by discovery, so adding a metric module here
is enough to register it: no edit of this file is required.
"""

import importlib
import pkgutil

from shared.metrics import basic, citations, grounding, pii, reference, safety, text_checks

_NAMED = {"basic", "citations", "grounding", "pii", "reference", "safety", "text_checks"}

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name not in _NAMED:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["basic", "citations", "grounding", "pii", "reference", "safety", "text_checks"]
