"""/v1/automations: CRUD, enable/disable (admin writes), and a dry-run test."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from api.context import deps, principal
from api.responses import documented, no_content
from replyflow.services.automation_models import (
    AutomationCreate,
    AutomationUpdate,
    AutomationView,
    DryRunRequest,
    DryRunResult,
)

router = Router()


@router.get("", tags=["automations"], summary="Automations (cached)", responses=documented())
def list_automations(
    account_id: Annotated[str | None, Query(max_length=26)] = None,
) -> list[AutomationView]:
    return deps(router).automations.list(principal(router), account_id)


@router.post(
    "",
    tags=["automations"],
    summary="Create an automation (admin); the plan's limit applies",
    responses=documented(201, 402, 404, 409, body=True),
)
def create(body: AutomationCreate) -> Response[AutomationView]:
    view = deps(router).automations.create(principal(router), body)
    return Response(201, content_types.APPLICATION_JSON, view)


@router.get(
    "/<automation_id>", tags=["automations"], summary="One automation", responses=documented(200, 404)
)
def get_automation(automation_id: str) -> AutomationView:
    return deps(router).automations.get(principal(router), automation_id)


@router.patch(
    "/<automation_id>",
    tags=["automations"],
    summary="Change an automation (admin)",
    responses=documented(200, 402, 404, 409, body=True),
)
def update(automation_id: str, body: AutomationUpdate) -> AutomationView:
    return deps(router).automations.update(principal(router), automation_id, body)


@router.delete(
    "/<automation_id>",
    tags=["automations"],
    summary="Delete an automation (admin)",
    responses=documented(204, 404),
)
def delete(automation_id: str) -> Response[Any]:
    deps(router).automations.delete(principal(router), automation_id)
    return no_content()


@router.post(
    "/<automation_id>/enable",
    tags=["automations"],
    summary="Enable (admin)",
    responses=documented(200, 402, 404, 409),
)
def enable(automation_id: str) -> AutomationView:
    return deps(router).automations.set_active(principal(router), automation_id, True)


@router.post(
    "/<automation_id>/disable",
    tags=["automations"],
    summary="Disable (admin)",
    responses=documented(200, 404, 409),
)
def disable(automation_id: str) -> AutomationView:
    return deps(router).automations.set_active(principal(router), automation_id, False)


@router.post(
    "/<automation_id>/test",
    tags=["automations"],
    summary="Dry run: given a sample comment or DM, which actions would run, or why not",
    responses=documented(200, 404, body=True),
)
def test(automation_id: str, body: DryRunRequest) -> DryRunResult:
    return deps(router).dry_run.run(principal(router), automation_id, body)
