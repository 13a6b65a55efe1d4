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
from replyflow.ports import Cache
from replyflow.services.access import Principal
from replyflow.services.day_range import day_range

STATS_TTL_SECONDS = 60


class DailyStats(BaseModel):
    date: date
    automation_id: str | None
    counts: dict[str, int]


class FlowDay(BaseModel):
    date: date
    flow_id: str
    counts: dict[str, int]


class StatsView(BaseModel):
    since: date
    until: date
    items: list[DailyStats]
    totals: dict[str, int]
    # Per flow, its step outcomes since it was created (entered, sent, tapped, captured, completed,
    # dropped, ...: the flow_step_stats counters; per step and version: GET /v1/flows/{id}/stats).
    flows: dict[str, dict[str, int]] = Field(default_factory=dict)
    # Per day of the range and flow, its step outcomes that day (the flow_step_daily counters).
    flow_days: list[FlowDay] = Field(default_factory=list)


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
    since, until = day_range(since, until, now=now)
    key = f"{{t:{principal.tenant_id}}}:stats:{since}:{until}:{automation_id or ''}:{account_id or ''}"
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
        flow_days=flow_days(session, principal.tenant_id, since, until),
    )
    cache.set_json(key, result.model_dump(mode="json"), STATS_TTL_SECONDS)
    return result


def flow_days(session: Session, tenant_id: str, since: date, until: date) -> list[FlowDay]:
    """Each flow's outcome counts per day of ``[since, until]``, by day then flow."""
    grouped: dict[tuple[date, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in flows_repo.step_days(session, tenant_id, since, until):
        grouped[(row.day, row.flow_id)][row.outcome] += row.count
    return [FlowDay(date=day, flow_id=flow, counts=dict(counts)) for (day, flow), counts in grouped.items()]
