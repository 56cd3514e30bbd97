"""The error taxonomy of architecture.md section 6.

Each class says what the caller should do: config errors stop before any work (exit 2), invalid
records are counted and skipped, transient errors are retried, metric errors become error rows, and
sink failures leave the ledger untouched (exit 1).
"""

from __future__ import annotations

from collections.abc import Iterable


class EvalmonError(Exception):
    """Base class of every error evalmon raises on purpose."""


class ConfigError(EvalmonError):
    """Bad configuration or usage: reported as one line naming file, field and valid choices."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        choices: Iterable[str] | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.field = field
        self.choices = sorted(choices) if choices is not None else None
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ": ".join(part for part in (self.file, self.field) if part)
        text = f"{where}: {self.message}" if where else self.message
        if self.choices is not None:
            text += f" (valid: {', '.join(self.choices) or 'none'})"
        return text

    def with_file(self, file: str) -> ConfigError:
        """The same error, attributed to a config file (used when loading re-raises)."""
        return ConfigError(self.message, file=self.file or file, field=self.field, choices=self.choices)


class InvalidRecordError(EvalmonError):
    """A source record cannot become a DatasetItem (no id, malformed). Counted, never fatal."""


class TransientError(EvalmonError):
    """A failure worth retrying (429, 5xx, timeouts). `retry_after` honours the server's hint."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MetricError(EvalmonError):
    """A metric could not produce a score for an item (e.g. unparseable judge output)."""

    def __init__(self, message: str, *, signals: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.signals = signals or {}


class SourceError(EvalmonError):
    """A source failed after its retries (unreachable host, bad credentials): the run fails."""


class SinkError(EvalmonError):
    """A sink failed: affected items are not recorded in the ledger and the run exits 1."""


class LedgerBusyError(EvalmonError):
    """Another run of the same monitor holds the ledger lock."""
