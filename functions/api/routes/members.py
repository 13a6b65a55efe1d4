"""/v1/members: everyone reads; owners invite, change roles and remove."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from api.context import deps, principal
from api.responses import documented
from replyflow.clock import utcnow
from replyflow.services import members
from replyflow.services.invitations import InvitationView
from replyflow.services.members import InviteRequest, MemberView, RoleChange

router = Router()


@router.get("", tags=["members"], summary="Members and their roles", responses=documented())
def list_members() -> list[MemberView]:
    with deps(router).unit_of_work() as session:
        return members.list_members(session, principal(router))


@router.post(
    "",
    tags=["members"],
    summary="Invite an email (owner): emails a single-use link; a member only once it is accepted",
    responses=documented(201, 409, 503, body=True),
)
def invite(body: InviteRequest) -> Response[InvitationView]:
    with deps(router).unit_of_work() as session:
        result = members.invite(
            session,
            principal(router),
            body,
            deps(router).limiter,
            deps(router).mailer,
            deps(router).console_base_url,
            now=utcnow(),
        )
    return Response(201, content_types.APPLICATION_JSON, result)


@router.patch(
    "/<user_id>",
    tags=["members"],
    summary="Change a member's role (owner)",
    responses=documented(200, 404, 409, body=True),
)
def change_role(user_id: str, body: RoleChange) -> MemberView:
    with deps(router).unit_of_work() as session:
        return members.change_role(session, deps(router).revoker, principal(router), user_id, body)


@router.delete(
    "/<user_id>", tags=["members"], summary="Remove a member (owner)", responses=documented(204, 404, 409)
)
def remove(user_id: str) -> Response[Any]:
    with deps(router).unit_of_work() as session:
        members.remove(session, deps(router).revoker, principal(router), user_id, now=utcnow())
    return Response(204, content_types.APPLICATION_JSON, None)
