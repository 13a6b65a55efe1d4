"""Members of a tenant. Owners manage members; everyone reads the list.

Invariants:
- a tenant always keeps at least one owner, under concurrency too: a role change or removal locks the
  tenant row first, then re-reads the caller's own role and counts the owners with a locking read, so
  two owners demoting each other at once are serialised (the second finds itself demoted, or the
  first as the last owner);
- a role change or removal takes effect on the member's next request: it bumps their revocation epoch
  in this tenant (``services.revocation``), so access tokens issued before it are refused (a role
  change asks for a refresh, which reads the new role); removal also revokes their refresh tokens;
- a tenant has at most its plan's ``MAX_MEMBERS`` members (``services.limits``).

Inviting creates an emailed invitation (``services.invitations``); nobody becomes a member without
accepting it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from replyflow.db.repositories import refresh_tokens, tenants, users
from replyflow.errors import ConflictError, ForbiddenError, NotFoundError
from replyflow.ports import Mailer, RateLimiter
from replyflow.services import invitations, limits, revocation
from replyflow.services.access import Principal
from replyflow.services.auth import Email
from replyflow.services.invitations import InvitationView
from replyflow.services.revocation import Revoker
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
    *,
    now: datetime,
) -> InvitationView:
    """Emails an invitation; the membership exists only once the invitee accepts it."""
    limits.check_members(session, principal.tenant_id, invitations_pending_at=now)
    return invitations.create(
        session, principal, limiter, mailer, console_base_url, email=request.email, role=request.role, now=now
    )


def _lock_as_owner(session: Session, principal: Principal) -> None:
    """Locks the tenant row (role changes and removals of one tenant run one at a time) and re-reads the
    caller's role under it: a token minted before a concurrent demotion still says owner."""
    principal.require("owner")
    tenants.get(session, principal.tenant_id, for_update=True)
    if principal.user_id is not None:
        own = tenants.membership(session, principal.tenant_id, principal.user_id)
        if own is None or own.role != "owner":
            raise ForbiddenError(
                "this needs the owner role; yours changed, refresh your token", code="insufficient_role"
            )


def _keeps_an_owner(session: Session, tenant_id: str) -> None:
    if tenants.owner_count(session, tenant_id, for_update=True) <= 1:
        raise ConflictError("a workspace needs at least one owner", code="last_owner")


def change_role(
    session: Session, revoker: Revoker, principal: Principal, user_id: str, request: RoleChange
) -> MemberView:
    _lock_as_owner(session, principal)
    membership = tenants.membership(session, principal.tenant_id, user_id)
    user = users.get(session, user_id)
    if membership is None or user is None:
        raise NotFoundError("no such member")
    if membership.role != request.role:
        if membership.role == "owner":
            _keeps_an_owner(session, principal.tenant_id)
        membership.role = request.role
        session.flush()
        revoker.user(session, principal.tenant_id, user_id, revocation.ROLE_CHANGED)
    return MemberView(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=membership.role,
        joined_at=membership.created_at,
    )


def remove(session: Session, revoker: Revoker, principal: Principal, user_id: str, *, now: datetime) -> None:
    _lock_as_owner(session, principal)
    membership = tenants.membership(session, principal.tenant_id, user_id)
    if membership is None:
        raise NotFoundError("no such member")
    if membership.role == "owner":
        _keeps_an_owner(session, principal.tenant_id)
    tenants.remove_member(session, principal.tenant_id, user_id)
    refresh_tokens.revoke_user(session, principal.tenant_id, user_id, now)
    revoker.user(session, principal.tenant_id, user_id, revocation.REMOVED)
