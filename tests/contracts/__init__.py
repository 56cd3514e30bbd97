"""The published API specs the loopback fakes are checked against, kept in the repository.

`tests/contracts/langfuse-openapi.yml` is Langfuse's published OpenAPI spec. A test that needs it
skips when it is missing on a developer's machine, but fails in CI (`CI=true`): a contract test
that silently skips keeps nothing honest.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

LANGFUSE_SPEC = Path(__file__).resolve().parent / "langfuse-openapi.yml"


def langfuse_spec() -> Path:
    """The Langfuse spec's path; skip without it locally, fail without it in CI."""
    if not LANGFUSE_SPEC.is_file():
        message = f"Langfuse OpenAPI spec not found at {LANGFUSE_SPEC}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: contract tests may not skip)")
        pytest.skip(message)
    return LANGFUSE_SPEC
