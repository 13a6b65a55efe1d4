"""/v1/members: everyone reads; owners invite, change roles and remove."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from api.context import deps, principal
from api.responses import documented
from replyflow.services.invitations import InvitationView
from replyflow.services.members import InviteRequest, MemberView, RoleChange

router = Router()


@router.get("", tags=["members"], summary="Members and their roles", responses=documented())
def list_members() -> list[MemberView]:
    return deps(router).members.list(principal(router))


@router.post(
    "",
    tags=["members"],
    summary="Invite an email (owner): emails a single-use link; a member only once it is accepted",
    responses=documented(201, 409, 503, body=True),
)
def invite(body: InviteRequest) -> Response[InvitationView]:
    result = deps(router).members.invite(principal(router), body)
    return Response(201, content_types.APPLICATION_JSON, result)


@router.patch(
    "/<user_id>",
    tags=["members"],
    summary="Change a member's role (owner)",
    responses=documented(200, 404, 409, body=True),
)
def change_role(user_id: str, body: RoleChange) -> MemberView:
    return deps(router).members.change_role(principal(router), user_id, body)


@router.delete(
    "/<user_id>", tags=["members"], summary="Remove a member (owner)", responses=documented(204, 404, 409)
)
def remove(user_id: str) -> Response[Any]:
    deps(router).members.remove(principal(router), user_id)
    return Response(204, content_types.APPLICATION_JSON, None)
