"""/v1/stats: daily counts per outcome per automation over at most 92 days (reader, cached 60 s)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from api.context import deps, principal
from api.responses import documented
from replyflow.services.stats import StatsView
from replyflow.timestamps import IsoDate

router = Router()


@router.get(
    "",
    tags=["stats"],
    summary="Daily outcome counts per automation (UTC days; until inclusive)",
    responses=documented(),
)
def daily(
    since: Annotated[IsoDate | None, Query(description="YYYY-MM-DD")] = None,
    until: Annotated[IsoDate | None, Query(description="YYYY-MM-DD")] = None,
    automation_id: Annotated[str | None, Query(max_length=26)] = None,
    account_id: Annotated[str | None, Query(max_length=26)] = None,
) -> StatsView:
    return deps(router).stats.daily(
        principal(router),
        since=since,
        until=until,
        automation_id=automation_id,
        account_id=account_id,
    )
