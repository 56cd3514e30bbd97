"""Fixtures for athena's tests."""

from __future__ import annotations

import pytest

from implementations.athena.generate_traces import GeneratedTrace, generate_traces


@pytest.fixture(scope="session")
def generated() -> list[GeneratedTrace]:
    """1,000 traces with the default defect mix (seed 11)."""
    return list(generate_traces(1000, seed=11))
