"""``UtcDateTime``: the type of every date-time an API view returns.

Columns hold naive UTC (``replyflow.clock``); a naive value serialized as is (``2026-12-01T09:30:00``)
is not an RFC 3339 date-time and a client would read it as local time. The validator marks naive
values as UTC and converts aware ones, so JSON always carries the offset: ``2026-12-01T09:30:00Z``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]

# Query parameters: ISO 8601 text only. Pydantic's lax mode would also read ``2.2e-16`` or
# ``1700000000`` as a Unix time, which the document (format date / date-time) does not allow.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})?")


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"expected an ISO 8601 {what}")
        return value

    return check


IsoDate = Annotated[date, BeforeValidator(_matching(_DATE, "date (YYYY-MM-DD)"))]
IsoDateTime = Annotated[datetime, BeforeValidator(_matching(_DATETIME, "date-time"))]
