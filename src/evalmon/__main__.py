"""`python -m evalmon ...` is the `evalmon` command."""

from shared.cli import app

app(prog_name="evalmon")
