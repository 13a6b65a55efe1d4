"""/v1/invitations: owners list, revoke and resend pending invitations; anyone with a link accepts.

``POST /v1/invitations/accept`` is a public route in template.yaml (a new user has no session yet);
a signed-in invitee sends its bearer token anyway, and the service verifies it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from api.context import client_ip, deps, header, principal
from api.responses import SECURITY_SCHEME, documented, no_content
from replyflow.services.auth import TokenPair
from replyflow.services.invitations import AcceptInvitationRequest, InvitationView

router = Router()
# The bearer is optional (signed in, or a new account's password); the service checks it.
OPTIONAL_BEARER: list[dict[str, list[str]]] = [{}, {SECURITY_SCHEME: []}]


@router.get("", tags=["members"], summary="Pending invitations (owner)", responses=documented())
def list_pending() -> list[InvitationView]:
    return deps(router).invitations.list_pending(principal(router))


@router.delete(
    "/<invitation_id>",
    tags=["members"],
    summary="Revoke a pending invitation (owner)",
    responses=documented(204, 404),
)
def revoke(invitation_id: str) -> Response[Any]:
    deps(router).invitations.revoke(principal(router), invitation_id)
    return no_content()


@router.post(
    "/<invitation_id>/resend",
    tags=["members"],
    summary="Email a new link (owner); the old one stops working, the 7 days start again",
    responses=documented(200, 404, 503),
)
def resend(invitation_id: str) -> InvitationView:
    return deps(router).invitations.resend(principal(router), invitation_id)


@router.post(
    "/accept",
    tags=["members"],
    summary="Accept an invitation: signed in as the invited email, or with a new account's password",
    description="Send `Authorization: Bearer <access JWT>` of the invited email's account, or no "
    "session and a `password` for a new account (when no account has this email).",
    security=OPTIONAL_BEARER,
    responses=documented(200, 401, 403, 404, 409, 429, public=True, body=True),
)
def accept(body: AcceptInvitationRequest) -> TokenPair:
    return deps(router).invitations.accept(
        body, authorization=header(router, "authorization"), ip=client_ip(router)
    )
