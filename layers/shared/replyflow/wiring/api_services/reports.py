"""Logs and stats on the reader (``/v1/logs``, ``/v1/stats``).

The rule every service object follows: ``replyflow.wiring.api_services``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from replyflow.wiring.api_services import UnitOfWork, service_module

if TYPE_CHECKING:
    from replyflow.ports import (
        Cache,
        NowClock,
    )
    from replyflow.services import logs_query, stats
    from replyflow.services.access import Principal
else:  # each module imported when a service object first calls into it
    logs_query = service_module("logs_query")
    stats = service_module("stats")


@dataclass(frozen=True, eq=False)
class LogService:
    """Reply logs and automation decisions, keyset-paginated, on the reader."""

    read_only: UnitOfWork

    def replies(
        self,
        principal: Principal,
        *,
        account_id: str | None,
        automation_id: str | None,
        status: str | None,
        since: datetime | None,
        until: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> logs_query.ReplyLogPage:
        with self.read_only() as session:
            return logs_query.reply_logs(
                session,
                principal,
                account_id=account_id,
                automation_id=automation_id,
                status=status,
                since=since,
                until=until,
                cursor=cursor,
                limit=limit,
            )

    def automations(
        self,
        principal: Principal,
        *,
        account_id: str | None,
        automation_id: str | None,
        action: str | None,
        since: datetime | None,
        until: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> logs_query.AutomationLogPage:
        with self.read_only() as session:
            return logs_query.automation_logs(
                session,
                principal,
                account_id=account_id,
                automation_id=automation_id,
                action=action,
                since=since,
                until=until,
                cursor=cursor,
                limit=limit,
            )


@dataclass(frozen=True, eq=False)
class StatsService:
    """Daily outcome counts per automation, on the reader (cached)."""

    read_only: UnitOfWork
    cache: Cache
    clock: NowClock

    def daily(
        self,
        principal: Principal,
        *,
        since: date | None,
        until: date | None,
        automation_id: str | None,
        account_id: str | None,
    ) -> stats.StatsView:
        with self.read_only() as session:
            return stats.stats(
                session,
                self.cache,
                principal,
                since=since,
                until=until,
                automation_id=automation_id,
                account_id=account_id,
                now=self.clock.now(),
            )
