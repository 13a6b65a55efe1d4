"""/v1/plans: the public plan catalogue (cached)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from api.context import deps
from api.responses import NO_AUTH, documented
from replyflow.services.subscriptions import PlanView

router = Router()


@router.get(
    "",
    tags=["plans"],
    summary="Every plan and its limits",
    security=NO_AUTH,
    responses=documented(public=True),
)
def list_plans() -> list[PlanView]:
    return deps(router).subscriptions.plans()
