"""``UtcDateTime``: the type of every date-time an API view returns.

Columns hold naive UTC (``replyflow.clock``); a naive value serialized as is (``2026-12-01T09:30:00``)
is not an RFC 3339 date-time and a client would read it as local time. The validator marks naive
values as UTC and converts aware ones, so JSON always carries the offset: ``2026-12-01T09:30:00Z``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]
