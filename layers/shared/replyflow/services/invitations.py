"""Invitations: how a person joins a workspace.

Invariants:
- nobody is added to a workspace without accepting: an invitation is a row with a single-use token
  (``rfi_``, 256 random bits; only its SHA-256 is stored) that is sent to the invited email and to
  nobody else -- the owner who invites never sees it;
- an invitation is pending until accepted, revoked or expired (7 days); one pending invitation per
  (workspace, email); a resend replaces the token (the old link stops working) and restarts the 7 days;
- accepting needs the token plus *either* the session of the user whose canonical email is the
  invited one (an existing account) *or* a new password that passes the policy (no account with that
  email yet). A password is never set on an existing account, and a session of another email
  cannot accept (403), so an earlier invitation from another workspace is worth nothing;
- accepting is single use (a conditional UPDATE under a row lock); it creates the membership and
  returns a session in the invited workspace.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from replyflow.adapters.passwords import hash_password
from replyflow.db.engine import is_duplicate_key
from replyflow.db.models import Invitation
from replyflow.db.repositories import invitations, tenants, users
from replyflow.domain.emails import OutgoingEmail
from replyflow.errors import BadRequestError, ConflictError, ForbiddenError, NotFoundError, UnauthorizedError
from replyflow.ids import new_id
from replyflow.ports import Mailer, RateLimiter
from replyflow.services import limits, tokens
from replyflow.services.access import Principal
from replyflow.services.auth import AuthConfig, TokenPair, issue_pair
from replyflow.services.password_policy import MAX_LENGTH, check_password
from replyflow.services.rate_limit_api import check_invitation_accept, check_invitations_sent
from replyflow.timestamps import UtcDateTime

INVITATION_TTL = timedelta(days=7)
InvitationStatus = Literal["pending", "accepted", "revoked", "expired"]


class InvitationView(BaseModel):
    id: str
    email: str
    role: str
    status: InvitationStatus
    invited_by: str | None
    created_at: UtcDateTime
    sent_at: UtcDateTime
    expires_at: UtcDateTime
    accepted_at: UtcDateTime | None = None


class AcceptInvitationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200)
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LENGTH,
        description="only without a session: the password of the new account (no account has this email)",
    )
    name: str = Field(default="", max_length=120, description="only with a password: the new user's name")


def status_of(invitation: Invitation, now: datetime) -> InvitationStatus:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    return "expired" if invitation.expires_at <= now else "pending"


def view(invitation: Invitation, now: datetime) -> InvitationView:
    return InvitationView(
        id=invitation.id,
        email=invitation.email,
        role=invitation.role,
        status=status_of(invitation, now),
        invited_by=invitation.invited_by,
        created_at=invitation.created_at,
        sent_at=invitation.sent_at,
        expires_at=invitation.expires_at,
        accepted_at=invitation.accepted_at,
    )


def _message(
    session: Session, invitation: Invitation, token: str, inviter_id: str | None, console_base_url: str
) -> OutgoingEmail:
    tenant = tenants.get(session, invitation.tenant_id)
    inviter = users.get(session, inviter_id) if inviter_id else None
    workspace = tenant.name if tenant is not None else "a workspace"
    who = inviter.email if inviter is not None else "An owner"
    return OutgoingEmail(
        to=invitation.email,
        subject=f"You are invited to {workspace} on Replyflow",
        kind="invitation",
        tenant_id=invitation.tenant_id,
        text=(
            f"{who} invited you to join the workspace {workspace} on Replyflow as {invitation.role}.\n\n"
            f"Accept the invitation: {console_base_url}/invitations/accept#token={token}\n\n"
            "If you already have a Replyflow account with this email, sign in first; otherwise you choose "
            "your password there. The link works once and expires in 7 days. "
            "If you did not expect this, ignore this email.\n"
        ),
    )


def create(
    session: Session,
    principal: Principal,
    limiter: RateLimiter,
    mailer: Mailer,
    console_base_url: str,
    *,
    email: str,
    role: str,
    now: datetime,
) -> InvitationView:
    """A pending invitation of ``email`` (canonical) to the principal's tenant, emailed to it."""
    principal.require("owner")
    # Invitations of one tenant run one at a time: "one pending per email" is a read, then a write.
    tenants.get(session, principal.tenant_id, for_update=True)
    existing = users.by_email(session, email)
    if existing is not None and tenants.membership(session, principal.tenant_id, existing.id) is not None:
        raise ConflictError("this user is already a member", code="already_member")
    if invitations.pending(session, principal.tenant_id, now, email=email):
        raise ConflictError(
            "this email already has a pending invitation; resend or revoke it", code="invitation_pending"
        )
    check_invitations_sent(limiter, principal.tenant_id)
    token = tokens.new_invitation_token()
    invitation = invitations.add(
        session,
        principal.tenant_id,
        email=email,
        role=role,
        token_hash=tokens.sha256_hex(token),
        invited_by=principal.user_id,
        now=now,
        expires_at=now + INVITATION_TTL,
    )
    mailer.send(_message(session, invitation, token, principal.user_id, console_base_url))
    return view(invitation, now)


def list_pending(session: Session, principal: Principal, *, now: datetime) -> list[InvitationView]:
    principal.require("owner")
    return [view(i, now) for i in invitations.pending(session, principal.tenant_id, now)]


def _pending_or_404(session: Session, principal: Principal, invitation_id: str, now: datetime) -> Invitation:
    invitation = invitations.get(session, principal.tenant_id, invitation_id, for_update=True)
    if invitation is None or status_of(invitation, now) != "pending":
        raise NotFoundError("no such pending invitation")
    return invitation


def revoke(session: Session, principal: Principal, invitation_id: str, *, now: datetime) -> None:
    principal.require("owner")
    _pending_or_404(session, principal, invitation_id, now).revoked_at = now
    session.flush()


def resend(
    session: Session,
    principal: Principal,
    limiter: RateLimiter,
    mailer: Mailer,
    console_base_url: str,
    invitation_id: str,
    *,
    now: datetime,
) -> InvitationView:
    principal.require("owner")
    invitation = _pending_or_404(session, principal, invitation_id, now)
    check_invitations_sent(limiter, principal.tenant_id)
    token = tokens.new_invitation_token()
    invitation.token_hash = tokens.sha256_hex(token)
    invitation.sent_at = now
    invitation.expires_at = now + INVITATION_TTL
    session.flush()
    mailer.send(_message(session, invitation, token, principal.user_id, console_base_url))
    return view(invitation, now)


def accept(
    session: Session,
    cfg: AuthConfig,
    limiter: RateLimiter,
    request: AcceptInvitationRequest,
    *,
    signed_in_user_id: str | None,
    ip: str,
    now: datetime,
) -> TokenPair:
    check_invitation_accept(limiter, ip)
    invitation = invitations.resolve_by_hash(session, tokens.sha256_hex(request.token))
    if invitation is None or status_of(invitation, now) in ("revoked", "expired"):
        raise NotFoundError("this invitation link is invalid or has expired", code="invitation_invalid")
    if invitation.accepted_at is not None:
        raise ConflictError("this invitation was already accepted", code="invitation_used")
    if signed_in_user_id is not None:
        if request.password is not None:
            raise BadRequestError("signed in, accept without a password", code="password_not_expected")
        user = users.get(session, signed_in_user_id)
        if user is None:
            raise UnauthorizedError("missing or invalid credentials")
        if user.email != invitation.email:
            raise ForbiddenError(
                "this invitation is for another email address; sign in with that one",
                code="invitation_email_mismatch",
            )
        if tenants.membership(session, invitation.tenant_id, user.id) is not None:
            raise ConflictError("you are already a member of this workspace", code="already_member")
    else:
        if request.password is None:
            raise UnauthorizedError(
                "sign in to accept, or send a password to create your account", code="sign_in_required"
            )
        if users.by_email(session, invitation.email) is not None:
            raise UnauthorizedError(
                "an account with this email exists; sign in with it, then accept", code="sign_in_required"
            )
        check_password(request.password, email=invitation.email, other_inputs=(request.name,))
        try:
            user = users.add(
                session,
                email=invitation.email,
                name=request.name,
                password_hash=hash_password(request.password),
            )
        except IntegrityError as exc:
            if is_duplicate_key(exc):  # a signup of this email committed in between
                raise ConflictError(
                    "an account with this email exists; sign in", code="email_taken"
                ) from None
            raise
    if not invitations.mark_accepted(session, invitation.tenant_id, invitation.id, user.id, now):
        raise ConflictError("this invitation was already accepted", code="invitation_used")
    limits.check_members(session, invitation.tenant_id)
    membership = tenants.add_member(session, invitation.tenant_id, user.id, invitation.role)
    return issue_pair(
        session,
        cfg,
        tenant_id=invitation.tenant_id,
        user_id=user.id,
        role=membership.role,
        family_id=new_id(),
        now=now,
    )
