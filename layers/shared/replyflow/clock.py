"""Time in one place: naive UTC datetimes everywhere (MySQL DATETIME has no zone), injectable in tests."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def epoch_ms() -> int:
    """Wall-clock milliseconds: token issue times and revocation epochs compare in this unit."""
    return time.time_ns() // 1_000_000


def epoch_seconds(moment: datetime) -> float:
    """A naive UTC datetime (the house clock) as epoch seconds."""
    return moment.replace(tzinfo=UTC).timestamp() if moment.tzinfo is None else moment.timestamp()


def from_epoch(value: float) -> datetime:
    """Instagram sends seconds on comment events and milliseconds on messaging events
    (docs/instagram.md#timestamps)."""
    seconds = value / 1000 if value >= 1e12 else value
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


class SystemClock:
    def now(self) -> datetime:
        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()
