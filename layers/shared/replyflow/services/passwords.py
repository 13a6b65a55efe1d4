"""Password change and reset.

- Change (signed in): the current password is required; the new one passes the policy; every
  refresh token of the user, in every tenant, is revoked, and the caller gets a new pair for the
  tenant it is signed in to, so only this device stays signed in.
- Forgot: always the same 202 answer, whether the email has an account or not (no enumeration; the
  per-email limit is silent for the same reason). For an account, a single-use ``rfp_`` token valid
  30 minutes is emailed as a link to the console; a newer request makes older links stop working.
- Reset: the token and a new password (policy checked) set the password, spend the token and every
  other one of the user, and revoke every refresh token of the user.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from replyflow.adapters.passwords import hash_password, verify_password
from replyflow.db.repositories import password_resets, refresh_tokens, tenants, users
from replyflow.domain.emails import OutgoingEmail
from replyflow.errors import BadRequestError, ForbiddenError, MailDeliveryError, UnauthorizedError
from replyflow.ids import new_id
from replyflow.observability import logger
from replyflow.ports import Mailer, RateLimiter
from replyflow.services import tokens
from replyflow.services.access import Principal
from replyflow.services.auth import AuthConfig, Email, TokenPair, issue_pair
from replyflow.services.password_policy import MAX_LENGTH, check_password
from replyflow.services.rate_limit_api import (
    check_password_change,
    check_password_forgot,
    check_password_reset,
)
from replyflow.services.revocation import PASSWORD_CHANGED

RESET_TTL = timedelta(minutes=30)


class PasswordChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=MAX_LENGTH)
    new_password: str = Field(min_length=1, max_length=MAX_LENGTH)


class PasswordForgotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email


class PasswordForgotAccepted(BaseModel):
    status: str = "accepted"
    message: str = "if an account has this email, a reset link is on its way; it works once, for 30 minutes"


class PasswordResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=MAX_LENGTH)


def change(
    session: Session,
    cfg: AuthConfig,
    limiter: RateLimiter,
    principal: Principal,
    request: PasswordChangeRequest,
    *,
    now: datetime,
) -> TokenPair:
    user_id = principal.require_user()
    check_password_change(limiter, user_id)
    user = users.get(session, user_id, for_update=True)
    membership = tenants.membership(session, principal.tenant_id, user_id)
    if user is None or membership is None:
        raise UnauthorizedError("you are no longer a member of this workspace")
    if not verify_password(user.password_hash, request.current_password):
        raise ForbiddenError("the current password is not right", code="wrong_password")
    check_password(request.new_password, email=user.email, other_inputs=(user.name,))
    if verify_password(user.password_hash, request.new_password):
        raise BadRequestError("the new password is the current one", code="password_unchanged")
    users.set_password_hash(session, user.id, hash_password(request.new_password))
    _end_sessions(cfg, refresh_tokens.revoke_every_tenant_of_user(session, user.id, now))
    password_resets.spend_all_of_user(session, user.id, now)
    return issue_pair(
        session,
        cfg,
        tenant_id=principal.tenant_id,
        user_id=user.id,
        role=membership.role,
        family_id=new_id(),
        now=now,
    )


def forgot(
    session: Session,
    limiter: RateLimiter,
    mailer: Mailer,
    console_base_url: str,
    request: PasswordForgotRequest,
    *,
    ip: str,
    now: datetime,
) -> PasswordForgotAccepted:
    answer = PasswordForgotAccepted()
    if not check_password_forgot(limiter, ip, request.email):
        return answer
    user = users.by_email(session, request.email)
    if user is None:
        return answer
    token = tokens.new_password_reset_token()
    password_resets.spend_all_of_user(session, user.id, now)
    password_resets.add(
        session, user_id=user.id, token_hash=tokens.sha256_hex(token), now=now, expires_at=now + RESET_TTL
    )
    message = OutgoingEmail(
        to=user.email,
        subject="Reset your Replyflow password",
        kind="password_reset",
        text=(
            "Someone asked to reset the password of your Replyflow account.\n\n"
            f"Choose a new password: {console_base_url}/password/reset#token={token}\n\n"
            "The link works once, for 30 minutes. If it was not you, ignore this email: "
            "your password stays as it is.\n"
        ),
    )
    try:
        mailer.send(message)
    except MailDeliveryError:
        # The answer must not differ for an existing account; the token is useless unsent.
        logger.warning("a password reset email could not be sent")
    return answer


def _end_sessions(cfg: AuthConfig, ended: list[tuple[str, str]]) -> None:
    """Deny-lists the ended sessions' access tokens too, so they stop on their next request. Raises
    ``RevocationUnavailableError`` (503) before the commit when Redis refuses: nothing changes."""
    if cfg.revoker is None:
        return
    for tenant_id, family_id in ended:
        cfg.revoker.end_session(tenant_id, family_id, PASSWORD_CHANGED)


def reset(
    session: Session,
    cfg: AuthConfig,
    limiter: RateLimiter,
    request: PasswordResetRequest,
    *,
    ip: str,
    now: datetime,
) -> None:
    check_password_reset(limiter, ip)
    found = password_resets.resolve_by_hash(session, tokens.sha256_hex(request.token))
    invalid = BadRequestError(
        "this reset link is invalid, used or expired; ask for a new one", code="invalid_reset_token"
    )
    if found is None or found.used_at is not None or found.expires_at <= now:
        raise invalid
    user = users.get(session, found.user_id, for_update=True)
    if user is None:
        raise invalid
    check_password(request.new_password, email=user.email, other_inputs=(user.name,))
    if not password_resets.spend(session, found.id, now):
        raise invalid
    users.set_password_hash(session, user.id, hash_password(request.new_password))
    password_resets.spend_all_of_user(session, user.id, now)
    _end_sessions(cfg, refresh_tokens.revoke_every_tenant_of_user(session, user.id, now))
