"""Daily counts per outcome (``automation_logs.action``) per automation over a bounded range.

The range is at most 92 days and the query reads the ``daily_stats`` rollup (kept in step with
``automation_logs`` by the pipeline), so its cost does not grow with the log volume; results are
cached in Redis for a minute per (tenant, range, filters), since dashboards poll.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from replyflow.db.repositories import flows as flows_repo
from replyflow.db.repositories import log_queries
from replyflow.errors import ValidationError
from replyflow.ports import Cache
from replyflow.services.access import Principal

MAX_DAYS = 92
DEFAULT_DAYS = 7
STATS_TTL_SECONDS = 60


class DailyStats(BaseModel):
    date: date
    automation_id: str | None
    counts: dict[str, int]


class StatsView(BaseModel):
    since: date
    until: date
    items: list[DailyStats]
    totals: dict[str, int]
    # Per flow, its step outcomes since it was created (entered, sent, tapped, captured, completed,
    # dropped, ...: the flow_step_stats counters; per step and version: GET /v1/flows/{id}/stats).
    flows: dict[str, dict[str, int]] = Field(default_factory=dict)


def stats(
    session: Session,
    cache: Cache,
    principal: Principal,
    *,
    since: date | None = None,
    until: date | None = None,
    automation_id: str | None = None,
    account_id: str | None = None,
    now: datetime,
) -> StatsView:
    """Days are UTC; ``until`` is inclusive. Defaults: the last 7 days including today."""
    until = until or now.date()
    # The calendar starts at 0001-01-01: a default range that would reach before it starts there.
    since = since or date.fromordinal(max(1, until.toordinal() - (DEFAULT_DAYS - 1)))
    if since > until:
        raise ValidationError("since must not be after until", details=[{"loc": ["query", "since"]}])
    if (until - since).days + 1 > MAX_DAYS:
        raise ValidationError(
            f"the range may cover at most {MAX_DAYS} days", details=[{"loc": ["query", "since"]}]
        )
    key = f"t:{principal.tenant_id}:stats:{since}:{until}:{automation_id or ''}:{account_id or ''}"
    cached = cache.get_json(key)
    if isinstance(cached, dict):
        return StatsView.model_validate(cached)
    rows = log_queries.daily_counts(
        session, principal.tenant_id, since, until, automation_id=automation_id, account_id=account_id
    )
    grouped: dict[tuple[date, str | None], dict[str, int]] = defaultdict(dict)
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        grouped[(row.day, row.automation_id)][row.action] = row.count
        totals[row.action] += row.count
    items = [
        DailyStats(date=day, automation_id=automation, counts=counts)
        for (day, automation), counts in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
    ]
    flows: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for stat in flows_repo.step_stats(session, principal.tenant_id):
        flows[stat.flow_id][stat.outcome] += stat.count
    result = StatsView(
        since=since,
        until=until,
        items=items,
        totals=dict(totals),
        flows={flow_id: dict(counts) for flow_id, counts in flows.items()},
    )
    cache.set_json(key, result.model_dump(mode="json"), STATS_TTL_SECONDS)
    return result
