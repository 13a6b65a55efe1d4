"""Members of a tenant. Owners manage members; everyone reads the list.

Invariants: a tenant always keeps at least one owner; removing a member revokes their refresh tokens
for this tenant (their access token lapses within its 15-minute TTL). Inviting creates an emailed
invitation (``services.invitations``); nobody becomes a member without accepting it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from replyflow.clock import utcnow
from replyflow.db.repositories import refresh_tokens, tenants, users
from replyflow.errors import ConflictError, NotFoundError
from replyflow.ports import Mailer
from replyflow.services import invitations
from replyflow.services.access import Principal
from replyflow.services.auth import Email
from replyflow.services.invitations import InvitationView
from replyflow.services.rate_limit_api import RateLimiter


class MemberView(BaseModel):
    user_id: str
    email: str
    name: str
    role: str
    joined_at: datetime


class InviteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    role: Literal["owner", "admin", "member"] = "member"


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["owner", "admin", "member"]


def list_members(session: Session, principal: Principal) -> list[MemberView]:
    return [
        MemberView(user_id=u.id, email=u.email, name=u.name, role=m.role, joined_at=m.created_at)
        for m, u in tenants.members(session, principal.tenant_id)
    ]


def invite(
    session: Session,
    principal: Principal,
    request: InviteRequest,
    limiter: RateLimiter,
    mailer: Mailer,
    console_base_url: str,
) -> InvitationView:
    """Emails an invitation; the membership exists only once the invitee accepts it."""
    return invitations.create(
        session, principal, limiter, mailer, console_base_url, email=request.email, role=request.role
    )


def change_role(session: Session, principal: Principal, user_id: str, request: RoleChange) -> MemberView:
    principal.require("owner")
    membership = tenants.membership(session, principal.tenant_id, user_id)
    user = users.get(session, user_id)
    if membership is None or user is None:
        raise NotFoundError("no such member")
    if (
        membership.role == "owner"
        and request.role != "owner"
        and tenants.owner_count(session, principal.tenant_id) <= 1
    ):
        raise ConflictError("a workspace needs at least one owner", code="last_owner")
    membership.role = request.role
    session.flush()
    return MemberView(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=membership.role,
        joined_at=membership.created_at,
    )


def remove(session: Session, principal: Principal, user_id: str) -> None:
    principal.require("owner")
    membership = tenants.membership(session, principal.tenant_id, user_id)
    if membership is None:
        raise NotFoundError("no such member")
    if membership.role == "owner" and tenants.owner_count(session, principal.tenant_id) <= 1:
        raise ConflictError("a workspace needs at least one owner", code="last_owner")
    tenants.remove_member(session, principal.tenant_id, user_id)
    refresh_tokens.revoke_user(session, principal.tenant_id, user_id, utcnow())
