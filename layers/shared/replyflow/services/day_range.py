"""The UTC day range a stats read covers: ``until`` inclusive, by default the last 7 days including
today, at most 92 days, so every such read is bounded whatever the data volume."""

from __future__ import annotations

from datetime import date, datetime

from replyflow.errors import ValidationError

MAX_DAYS = 92
DEFAULT_DAYS = 7


def day_range(since: date | None, until: date | None, *, now: datetime) -> tuple[date, date]:
    """``(since, until)`` with the defaults applied, or a 422 naming the ``since`` query parameter."""
    until = until or now.date()
    # The calendar starts at 0001-01-01: a default range that would reach before it starts there.
    since = since or date.fromordinal(max(1, until.toordinal() - (DEFAULT_DAYS - 1)))
    if since > until:
        raise ValidationError("since must not be after until", details=[{"loc": ["query", "since"]}])
    if (until - since).days + 1 > MAX_DAYS:
        raise ValidationError(
            f"the range may cover at most {MAX_DAYS} days", details=[{"loc": ["query", "since"]}]
        )
    return since, until
