"""Time windows (architecture.md section 4): `[now - lookback, now - settle]` or explicit since/until."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.errors import ConfigError
from shared.evaluation.item import to_utc


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    explicit: bool = False  # given by since/until rather than derived from now (file sources filter only then)

    def contains(self, ts: datetime | None) -> bool:
        return ts is not None and self.since <= ts < self.until

    def as_dict(self) -> dict[str, str]:
        return {"since": iso(self.since), "until": iso(self.until)}


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(value: str, *, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"'{value}' is not an ISO 8601 time (e.g. 2026-11-22T10:00:00Z)", field=field) from None
    result = to_utc(parsed)
    assert result is not None
    return result


def resolve_window(
    *,
    lookback_minutes: float,
    settle_minutes: float,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> Window:
    """Explicit bounds win; a missing bound comes from lookback/settle relative to now."""
    now = to_utc(now) or datetime.now(UTC)
    end = to_utc(until) or now - timedelta(minutes=settle_minutes)
    start = to_utc(since) or end - timedelta(minutes=lookback_minutes)
    if start >= end:
        raise ConfigError(f"window is empty: since {iso(start)} is not before until {iso(end)}", field="window")
    return Window(since=start, until=end, explicit=since is not None or until is not None)
