"""Make tests/ importable so `fakes.*` resolves however pytest picks its rootdir."""

import sys
from pathlib import Path

TESTS_DIR = str(Path(__file__).resolve().parents[2])
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)
