"""Connecting an Instagram account through Instagram Login (reference section 11).

``start`` gives the caller an authorize URL whose ``state`` is a signed, 10-minute token naming the
tenant and user (so the unauthenticated callback knows whose account it is, and a forged or stale
callback is refused). ``callback`` exchanges the code for a short-lived token, that for a 60-day
token, reads the professional account id from ``/me?fields=user_id,username`` (the id webhooks carry),
subscribes the account's webhooks and stores the token encrypted. ``sandbox_connect`` runs the same
flow server-side against the sandbox, whose authorize page consents at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from replyflow.adapters.crypto import TokenCipher
from replyflow.adapters.instagram_oauth import InstagramOAuth
from replyflow.adapters.jwt_keys import InvalidTokenError, KeyRing
from replyflow.errors import BadRequestError, ForbiddenError
from replyflow.ports import Cache
from replyflow.services import accounts, tokens
from replyflow.services.access import Principal
from replyflow.services.accounts import AccountView

SCOPES = "instagram_business_basic,instagram_business_manage_messages,instagram_business_manage_comments"


@dataclass(frozen=True)
class OAuthConfig:
    app_id: str
    app_secret: str
    authorize_url: str
    redirect_uri: str
    keys: KeyRing
    default_hourly_send_budget: int
    sandbox_allowed: bool


class AuthorizeUrl(BaseModel):
    authorize_url: str
    expires_in: int = tokens.OAUTH_STATE_TTL_SECONDS


class SandboxConnectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ig_user_id: str | None = Field(
        default=None, pattern=r"^[0-9]{5,30}$", description="the sandbox account id"
    )
    username: str | None = Field(default=None, max_length=64)


def _authorize_url(cfg: OAuthConfig, state: str, extra: dict[str, str] | None = None) -> str:
    params = {
        "client_id": cfg.app_id,
        "redirect_uri": cfg.redirect_uri,
        "response_type": "code",
        "scope": SCOPES,
        "state": state,
        **(extra or {}),
    }
    separator = "&" if "?" in cfg.authorize_url else "?"
    return f"{cfg.authorize_url}{separator}{urlencode(params)}"


def start(cfg: OAuthConfig, principal: Principal) -> AuthorizeUrl:
    principal.require("admin")
    state = tokens.issue_oauth_state(cfg.keys, tenant_id=principal.tenant_id, user_id=principal.principal_id)
    return AuthorizeUrl(authorize_url=_authorize_url(cfg, state))


def _complete(
    session: Session,
    cache: Cache,
    cipher: TokenCipher,
    client: InstagramOAuth,
    cfg: OAuthConfig,
    *,
    tenant_id: str,
    code: str,
    requeue: Callable[[Session, str, str], object] | None,
) -> AccountView:
    short = client.exchange_code(
        code=code, app_id=cfg.app_id, app_secret=cfg.app_secret, redirect_uri=cfg.redirect_uri
    )
    long = client.long_lived(short_token=short, app_secret=cfg.app_secret)
    profile = client.profile(long.access_token)
    client.subscribe(long.access_token)
    return accounts.store_connection(
        session,
        cache,
        cipher,
        tenant_id=tenant_id,
        ig_user_id=profile.ig_user_id,
        username=profile.username,
        access_token=long.access_token,
        expires_in=long.expires_in,
        hourly_send_budget=cfg.default_hourly_send_budget,
        on_reconnect=requeue,
    )


def callback(
    session: Session,
    cache: Cache,
    cipher: TokenCipher,
    client: InstagramOAuth,
    cfg: OAuthConfig,
    *,
    code: str | None,
    state: str | None,
    error: str | None = None,
    requeue: Callable[[Session, str, str], object] | None = None,
) -> AccountView:
    if error:
        raise BadRequestError(f"Instagram login was not completed: {error}", code="oauth_denied")
    if not code or not state:
        raise BadRequestError("code and state are required", code="oauth_invalid_callback")
    try:
        claims = tokens.verify_oauth_state(cfg.keys, state)
    except InvalidTokenError:
        raise BadRequestError(
            "the OAuth state is invalid or expired; start again", code="oauth_invalid_state"
        ) from None
    return _complete(
        session, cache, cipher, client, cfg, tenant_id=claims["tenant_id"], code=code, requeue=requeue
    )


def sandbox_connect(
    session: Session,
    cache: Cache,
    cipher: TokenCipher,
    client: InstagramOAuth,
    cfg: OAuthConfig,
    principal: Principal,
    request: SandboxConnectRequest,
    requeue: Callable[[Session, str, str], object] | None = None,
) -> AccountView:
    principal.require("admin")
    if not cfg.sandbox_allowed:
        raise ForbiddenError("sandbox connect is not available in production", code="sandbox_disabled")
    state = tokens.issue_oauth_state(cfg.keys, tenant_id=principal.tenant_id, user_id=principal.principal_id)
    extra = {k: v for k, v in (("ig_user_id", request.ig_user_id), ("username", request.username)) if v}
    code = client.authorize_code(_authorize_url(cfg, state, extra))
    return _complete(
        session, cache, cipher, client, cfg, tenant_id=principal.tenant_id, code=code, requeue=requeue
    )
