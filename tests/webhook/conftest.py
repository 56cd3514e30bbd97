"""Webhook fixtures: Langfuse-style signing lives in fakes.langfuse_prompts (independent of the app's code)."""

import sys
from pathlib import Path

TESTS_DIR = str(Path(__file__).resolve().parents[1])
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

from prompts.conftest import lf_settings, pg_schema, pg_url  # noqa: E402,F401

SECRET = "lf-whsec_7f3c0e9d2b6a4c18a5e1f0d3b7c9a2e4"
