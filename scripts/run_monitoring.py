"""Entry point for the cron workflow: `python scripts/run_monitoring.py CONFIG [options]`.

Behaves exactly as `evalmon run CONFIG [options]` (same options, output and exit codes).
"""

from __future__ import annotations

import sys

from shared.cli import app

if __name__ == "__main__":
    app(args=["run", *sys.argv[1:]], prog_name="evalmon")
