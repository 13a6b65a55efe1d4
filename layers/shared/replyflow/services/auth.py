"""Sign-up, login, refresh, logout and "who am I".

Invariants:
- passwords are argon2id; a login for an unknown email still runs one argon2 verification, so timing
  does not reveal which emails exist; every failure is the same ``invalid_credentials`` 401;
- login is rate limited per IP and per email *before* the password is checked (429, never a slower
  401), by the caller passing a :class:`RateLimiter`;
- refresh tokens rotate: each use returns a new token of the same family and marks the old one
  rotated; presenting a rotated (or concurrently rotated) token again revokes the whole family
  (``refresh_token_reused``), so a stolen token is useful once at most;
- the role in an access token is read from the membership at login and at each refresh; an access
  token names its login session (``sid`` = the refresh-token family), and logout (or reuse of a
  rotated refresh token) deny-lists that session, so its access tokens stop working on the next
  request (``services.revocation``), not when they expire;
- one user per email: the unique index decides, so a signup that loses a race to another for the
  same email is the same ``email_taken`` 409 as one that finds the email taken;
- emails are canonical (``domain.emails``) from the moment a request model parses them: lookups,
  uniqueness and every rate-limit key see one spelling;
- a new password passes ``password_policy.check_password``.
"""

from __future__ import annotations

import re
import secrets
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from replyflow.adapters.jwt_keys import InvalidTokenError, KeyRing
from replyflow.adapters.passwords import hash_password, verify_password
from replyflow.db.engine import is_duplicate_key
from replyflow.db.models import Subscription, Tenant
from replyflow.db.repositories import refresh_tokens, tenants, users
from replyflow.db.repositories import subscriptions as subscriptions_repo
from replyflow.domain.emails import EMAIL_PATTERN, canonical_email
from replyflow.errors import ConflictError, ForbiddenError, UnauthorizedError
from replyflow.ids import new_id
from replyflow.ports import RateLimiter, RevocationUnavailableError
from replyflow.services import tokens
from replyflow.services.access import Principal
from replyflow.services.password_policy import check_password
from replyflow.services.rate_limit_api import check_login, check_refresh, check_signup
from replyflow.services.revocation import LOGGED_OUT, REFRESH_REUSED, Revoker
from replyflow.timestamps import UtcDateTime

FREE_PLAN = "free"


def _canonical(value: Any) -> Any:
    return canonical_email(value) if isinstance(value, str) else value


Email = Annotated[str, BeforeValidator(_canonical), Field(pattern=EMAIL_PATTERN, max_length=254)]


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: str = Field(min_length=10, max_length=256)
    name: str = Field(default="", max_length=120)
    workspace_name: str = Field(min_length=1, max_length=120)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: str = Field(min_length=1, max_length=256)
    tenant_id: str | None = Field(default=None, description="which workspace; the oldest one when omitted")


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=200)


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    tenant_id: str
    user_id: str
    role: str


class UserView(BaseModel):
    id: str
    email: str
    name: str


class TenantView(BaseModel):
    id: str
    name: str
    slug: str
    plan_code: str
    status: str


class MeView(BaseModel):
    principal_type: str
    role: str
    tenant: TenantView
    user: UserView | None = None
    api_key_id: str | None = None


class WorkspaceView(BaseModel):
    """A workspace the signed-in user is a member of; ``current`` is the one the token is for."""

    tenant: TenantView
    role: str
    current: bool
    joined_at: UtcDateTime


@dataclass(frozen=True)
class AuthConfig:
    keys: KeyRing
    access_ttl_seconds: int
    refresh_ttl_seconds: int
    revoker: Revoker | None = None  # deny-lists logged-out sessions; None only in token-only tests


_dummy: list[str] = []


def _dummy_hash() -> str:
    if not _dummy:
        _dummy.append(hash_password(secrets.token_urlsafe(16)))
    return _dummy[0]


def _slug(name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "workspace"
    # 40 random bits: two workspaces of one name colliding (a 500 on the unique key) is out of reach.
    return f"{base}-{secrets.token_hex(5)}"


def issue_pair(
    session: Session,
    cfg: AuthConfig,
    *,
    tenant_id: str,
    user_id: str,
    role: str,
    family_id: str,
    now: datetime,
) -> TokenPair:
    refresh = tokens.new_refresh_token()
    refresh_tokens.add(
        session,
        tenant_id,
        user_id=user_id,
        family_id=family_id,
        token_hash=tokens.sha256_hex(refresh),
        expires_at=now + timedelta(seconds=cfg.refresh_ttl_seconds),
    )
    access = tokens.issue_access_token(
        cfg.keys,
        user_id=user_id,
        tenant_id=tenant_id,
        role=role,
        ttl_seconds=cfg.access_ttl_seconds,
        session_id=family_id,
    )
    return TokenPair(
        access_token=access,
        expires_in=cfg.access_ttl_seconds,
        refresh_token=refresh,
        refresh_expires_in=cfg.refresh_ttl_seconds,
        tenant_id=tenant_id,
        user_id=user_id,
        role=role,
    )


def _email_taken() -> ConflictError:
    return ConflictError("an account with this email already exists; log in instead", code="email_taken")


def signup(
    session: Session, cfg: AuthConfig, limiter: RateLimiter, request: SignupRequest, *, ip: str, now: datetime
) -> TokenPair:
    check_signup(limiter, ip)
    if users.by_email(session, request.email) is not None:
        raise _email_taken()
    check_password(request.password, email=request.email, other_inputs=(request.name, request.workspace_name))
    tenant = tenants.add(
        session, name=request.workspace_name, slug=_slug(request.workspace_name), plan_code=FREE_PLAN
    )
    try:
        user = users.add(
            session, email=request.email, name=request.name, password_hash=hash_password(request.password)
        )
    except IntegrityError as exc:
        # A concurrent signup committed this email after the read above (the caller rolls back).
        if is_duplicate_key(exc):
            raise _email_taken() from None
        raise
    tenants.add_member(session, tenant.id, user.id, "owner")
    subscriptions_repo.add(
        session,
        Subscription(
            tenant_id=tenant.id,
            plan_code=FREE_PLAN,
            status="active",
            provider="manual",
            current_period_start=now,
            current_period_end=now + timedelta(days=30),
        ),
    )
    return issue_pair(
        session, cfg, tenant_id=tenant.id, user_id=user.id, role="owner", family_id=new_id(), now=now
    )


def login(
    session: Session, cfg: AuthConfig, limiter: RateLimiter, request: LoginRequest, *, ip: str, now: datetime
) -> TokenPair:
    check_login(limiter, ip, request.email)
    user = users.by_email(session, request.email)
    if user is None:
        verify_password(_dummy_hash(), request.password)
        raise UnauthorizedError("wrong email or password", code="invalid_credentials")
    if not verify_password(user.password_hash, request.password):
        raise UnauthorizedError("wrong email or password", code="invalid_credentials")
    memberships = tenants.memberships_of_user(session, user.id)
    if request.tenant_id is not None:
        memberships = [m for m in memberships if m.tenant_id == request.tenant_id]
    if not memberships:
        raise UnauthorizedError("wrong email or password", code="invalid_credentials")
    membership = memberships[0]
    return issue_pair(
        session,
        cfg,
        tenant_id=membership.tenant_id,
        user_id=user.id,
        role=membership.role,
        family_id=new_id(),
        now=now,
    )


def refresh(
    session: Session,
    cfg: AuthConfig,
    limiter: RateLimiter,
    request: RefreshRequest,
    *,
    ip: str,
    now: datetime,
) -> TokenPair:
    check_refresh(limiter, ip)
    token = refresh_tokens.resolve_by_hash(session, tokens.sha256_hex(request.refresh_token))
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        raise UnauthorizedError(
            "the refresh token is invalid or expired; log in again", code="invalid_refresh_token"
        )
    if token.rotated_at is not None or not refresh_tokens.mark_rotated(
        session, token.tenant_id, token.id, now
    ):
        _revoke_after_reuse(session, cfg, token.tenant_id, token.family_id, now)
        raise UnauthorizedError(
            "this refresh token was already used; every session of this login was signed out",
            code="refresh_token_reused",
        )
    membership = tenants.membership(session, token.tenant_id, token.user_id)
    if membership is None:
        refresh_tokens.revoke_family(session, token.tenant_id, token.family_id, now)
        raise UnauthorizedError("you are no longer a member of this workspace", code="invalid_refresh_token")
    return issue_pair(
        session,
        cfg,
        tenant_id=token.tenant_id,
        user_id=token.user_id,
        role=membership.role,
        family_id=token.family_id,
        now=now,
    )


def _revoke_after_reuse(
    session: Session, cfg: AuthConfig, tenant_id: str, family_id: str, now: datetime
) -> None:
    # The request fails, and its unit of work rolls back: commit the revocation first.
    refresh_tokens.revoke_family(session, tenant_id, family_id, now)
    session.commit()
    if cfg.revoker is not None:
        # Best effort: the family is revoked in the database, which the API checks while Redis is down.
        with suppress(RevocationUnavailableError):
            cfg.revoker.end_session(tenant_id, family_id, REFRESH_REUSED)


def user_id_from_bearer(keys: KeyRing, authorization: str | None) -> str | None:
    """The user of an ``Authorization: Bearer <access JWT>`` header on a route the gateway does not
    authorize (accepting an invitation works signed in or not). None without the header;
    ``UnauthorizedError`` for a header that is not a valid user access token (never a silent fallback
    to the signed-out path)."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise UnauthorizedError("missing or invalid credentials")
    if credential.strip().startswith(tokens.API_KEY_PREFIX):
        raise ForbiddenError("an invitation is accepted by a user, not an API key", code="user_required")
    try:
        return tokens.verify_access_token(keys, credential.strip()).user_id
    except InvalidTokenError:
        raise UnauthorizedError("missing or invalid credentials") from None


def logout(session: Session, cfg: AuthConfig, request: RefreshRequest, *, now: datetime) -> None:
    """Revokes the token's whole family (this login on every device it was refreshed on) and deny-lists
    the session, so its access tokens are refused on the next request. Idempotent. If the deny-list
    cannot be written the logout fails (503) and nothing changes: the client can retry."""
    token = refresh_tokens.resolve_by_hash(session, tokens.sha256_hex(request.refresh_token))
    if token is not None:
        if cfg.revoker is not None:
            cfg.revoker.end_session(token.tenant_id, token.family_id, LOGGED_OUT)
        refresh_tokens.revoke_family(session, token.tenant_id, token.family_id, now)


def me(session: Session, principal: Principal) -> MeView:
    tenant = tenants.get(session, principal.tenant_id)
    if tenant is None:
        raise UnauthorizedError("this workspace no longer exists")
    tenant_view = _tenant_view(tenant)
    if principal.principal_type == "api_key":
        return MeView(
            principal_type="api_key",
            role=principal.role,
            tenant=tenant_view,
            api_key_id=principal.principal_id,
        )
    user = users.get(session, principal.principal_id)
    if user is None or tenants.membership(session, tenant.id, user.id) is None:
        raise UnauthorizedError("you are no longer a member of this workspace")
    return MeView(
        principal_type="user",
        role=principal.role,
        tenant=tenant_view,
        user=UserView(id=user.id, email=user.email, name=user.name),
    )


def _tenant_view(tenant: Tenant) -> TenantView:
    return TenantView(
        id=tenant.id, name=tenant.name, slug=tenant.slug, plan_code=tenant.plan_code, status=tenant.status
    )


def workspaces(session: Session, principal: Principal) -> list[WorkspaceView]:
    """The workspaces the signed-in user is a member of, with their role in each, oldest first (the
    order login picks from). Another workspace is entered by logging in with its ``tenant_id``; an API
    key belongs to one workspace and has no such list (403 ``user_required``)."""
    user_id = principal.require_user()
    return [
        WorkspaceView(
            tenant=_tenant_view(tenant),
            role=membership.role,
            current=tenant.id == principal.tenant_id,
            joined_at=membership.created_at,
        )
        for membership, tenant in tenants.workspaces_of_user(session, user_id)
    ]
