"""/v1/logs/replies and /v1/logs/automations: keyset-paginated, filtered, newest first (reader)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from api.context import deps, principal
from api.responses import documented
from replyflow.services.logs_query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    AutomationAction,
    AutomationLogPage,
    ReplyLogPage,
    ReplyStatus,
)
from replyflow.timestamps import IsoDateTime

router = Router()
Id = Annotated[str | None, Query(max_length=26)]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Since = Annotated[IsoDateTime | None, Query(description="inclusive, ISO 8601 (UTC when no offset)")]
Until = Annotated[IsoDateTime | None, Query(description="exclusive, ISO 8601")]


@router.get(
    "/replies",
    tags=["logs"],
    summary="Reply logs (sent, failed, skipped, deferred, parked)",
    responses=documented(),
)
def replies(
    account_id: Id = None,
    automation_id: Id = None,
    status: Annotated[ReplyStatus | None, Query()] = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> ReplyLogPage:
    return deps(router).logs.replies(
        principal(router),
        account_id=account_id,
        automation_id=automation_id,
        status=status,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/automations",
    tags=["logs"],
    summary="Automation decisions (matched, skipped with reason, ...)",
    responses=documented(),
)
def automation_decisions(
    account_id: Id = None,
    automation_id: Id = None,
    action: Annotated[AutomationAction | None, Query()] = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> AutomationLogPage:
    return deps(router).logs.automations(
        principal(router),
        account_id=account_id,
        automation_id=automation_id,
        action=action,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
