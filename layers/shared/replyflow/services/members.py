"""Members of a tenant. Owners manage members; everyone reads the list.

Invariants: a tenant always keeps at least one owner; removing a member revokes their refresh tokens
for this tenant (their access token lapses within its 15-minute TTL). There is no mail in this
product: inviting an unknown email creates the user with a one-time password shown once.
"""

from __future__ import annotations

import secrets
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from replyflow.adapters.passwords import hash_password
from replyflow.clock import utcnow
from replyflow.db.repositories import refresh_tokens, tenants, users
from replyflow.errors import ConflictError, NotFoundError
from replyflow.services.access import Principal
from replyflow.services.auth import Email
from replyflow.timestamps import UtcDateTime


class MemberView(BaseModel):
    user_id: str
    email: str
    name: str
    role: str
    joined_at: UtcDateTime


class InviteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    role: Literal["owner", "admin", "member"] = "member"
    name: str = Field(default="", max_length=120)


class InviteResult(MemberView):
    temporary_password: str | None = Field(
        default=None, description="set only when the user was created by this invitation; shown once"
    )


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["owner", "admin", "member"]


def list_members(session: Session, principal: Principal) -> list[MemberView]:
    return [
        MemberView(user_id=u.id, email=u.email, name=u.name, role=m.role, joined_at=m.created_at)
        for m, u in tenants.members(session, principal.tenant_id)
    ]


def invite(session: Session, principal: Principal, request: InviteRequest) -> InviteResult:
    principal.require("owner")
    user = users.by_email(session, request.email)
    temporary: str | None = None
    if user is None:
        temporary = secrets.token_urlsafe(12)
        user = users.add(
            session, email=request.email, name=request.name, password_hash=hash_password(temporary)
        )
    elif tenants.membership(session, principal.tenant_id, user.id) is not None:
        raise ConflictError("this user is already a member", code="already_member")
    membership = tenants.add_member(session, principal.tenant_id, user.id, request.role)
    return InviteResult(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=membership.role,
        joined_at=membership.created_at,
        temporary_password=temporary,
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
