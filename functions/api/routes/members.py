"""/v1/members: everyone reads; owners invite, change roles and remove."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from api.context import principal
from api.responses import documented, no_content
from replyflow.services import members
from replyflow.services.members import InviteRequest, InviteResult, MemberView, RoleChange
from replyflow.wiring import api as wiring

router = Router()


@router.get("", tags=["members"], summary="Members and their roles", responses=documented())
def list_members() -> list[MemberView]:
    with wiring.unit_of_work() as session:
        return members.list_members(session, principal(router))


@router.post(
    "", tags=["members"], summary="Invite a member (owner)", responses=documented(201, 409, body=True)
)
def invite(body: InviteRequest) -> Response[InviteResult]:
    with wiring.unit_of_work() as session:
        result = members.invite(session, principal(router), body)
    return Response(201, content_types.APPLICATION_JSON, result)


@router.patch(
    "/<user_id>",
    tags=["members"],
    summary="Change a member's role (owner)",
    responses=documented(200, 404, 409, body=True),
)
def change_role(user_id: str, body: RoleChange) -> MemberView:
    with wiring.unit_of_work() as session:
        return members.change_role(session, principal(router), user_id, body)


@router.delete(
    "/<user_id>", tags=["members"], summary="Remove a member (owner)", responses=documented(204, 404, 409)
)
def remove(user_id: str) -> Response[Any]:
    with wiring.unit_of_work() as session:
        members.remove(session, principal(router), user_id)
    return no_content()
