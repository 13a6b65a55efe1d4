"""/v1/subscriptions: the current subscription, plan changes (idempotent), cancellation."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Header

from api.context import deps, header, principal
from api.errors import ErrorResponse
from api.responses import documented
from replyflow.services.subscriptions import ChangePlanRequest, SubscriptionView

router = Router()


@router.get(
    "/current",
    tags=["subscriptions"],
    summary="The active subscription and its plan",
    responses=documented(200, 404),
)
def current() -> SubscriptionView:
    return deps(router).subscriptions.current(principal(router))


@router.post(
    "",
    tags=["subscriptions"],
    summary="Change plan (owner); idempotent under Idempotency-Key; over-limit downgrades are refused",
    responses=documented(200, 404, 409, body=True, model=SubscriptionView),
)
def change_plan(
    body: ChangePlanRequest,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description="replays the first result for the same body")
    ] = None,
) -> Response[SubscriptionView | ErrorResponse]:
    # A replayed request answers what the first one did, an error included (with its status).
    key = header(router, "Idempotency-Key")
    result = deps(router).subscriptions.change_plan(principal(router), body, key)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return Response(result.status, content_types.APPLICATION_JSON, result.body, headers=headers)


@router.post(
    "/current/cancel",
    tags=["subscriptions"],
    summary="Cancel at the end of the period (owner)",
    responses=documented(200, 404, 409),
)
def cancel() -> SubscriptionView:
    return deps(router).subscriptions.cancel(principal(router))
