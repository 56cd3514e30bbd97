"""Make tests/ importable (for `fakes.langfuse_server`) and start the loopback fake Langfuse.

This directory has no __init__.py on purpose: a `tests/langfuse` package would shadow the SDK.
"""

import sys
from pathlib import Path

TESTS_DIR = str(Path(__file__).resolve().parents[1])
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

from datetime import UTC, datetime, timedelta  # noqa: E402

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
WINDOW_SINCE = NOW - timedelta(hours=1)
WINDOW_UNTIL = NOW
