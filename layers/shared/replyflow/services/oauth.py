"""Connecting an Instagram account through Instagram Login (docs/instagram.md#tokens-and-oauth).

The flow, and why it is shaped this way (OAuth account-linking CSRF):

1. ``start`` (authenticated, admin) gives the caller an authorize URL whose ``state`` is a signed,
   10-minute token naming the tenant, the user and a random nonce.
2. Instagram sends the browser to ``OAUTH_REDIRECT_URI`` with ``code`` and ``state``: in production the
   tenant's dashboard page, which calls ``complete`` with the user's own bearer token.
3. ``complete`` (authenticated, admin) connects the account only when the state is genuine and
   unexpired, names the *caller's* tenant and user, and its nonce has not been spent (spent here, once,
   before the code is exchanged). A link an attacker started for their workspace is therefore useless
   to a victim: completed with the victim's session it is ``oauth_state_mismatch`` and nothing is
   connected; and a state is never good twice (``oauth_state_used``).

The unauthenticated ``callback`` route never connects anything: it only shows the code and state (and
Instagram's error, if any) so a setup without a dashboard can finish with ``complete`` by hand.

``complete`` exchanges the code for a short-lived token, that for a 60-day token, reads the
professional account id from ``/me?fields=user_id,username`` (the id webhooks carry), subscribes the
account's webhooks and stores the token encrypted. ``sandbox_connect`` runs start -> authorize ->
complete server-side for the caller against the sandbox, whose authorize page consents at once.
"""

from __future__ import annotations

import html
import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from replyflow.adapters.crypto import TokenCipher
from replyflow.adapters.instagram_oauth import InstagramOAuth
from replyflow.adapters.jwt_keys import InvalidTokenError, KeyRing
from replyflow.errors import BadRequestError, ConflictError, ForbiddenError, ValidationError
from replyflow.observability import logger
from replyflow.ports import Cache
from replyflow.services import accounts, tokens
from replyflow.services.access import Principal
from replyflow.services.accounts import AccountView

SCOPES = "instagram_business_basic,instagram_business_manage_messages,instagram_business_manage_comments"
COMPLETE_PATH = "/v1/accounts/oauth/complete"
CALLBACK_PATH = "/v1/accounts/oauth/callback"


class NonceStore(Protocol):
    """Single-use nonces: ``acquire`` is true for the first caller of a key within ``seconds``
    (Redis ``SET NX EX``)."""

    def acquire(self, key: str, seconds: int) -> bool: ...


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


class CompleteRequest(BaseModel):
    """What the dashboard read from its URL after Instagram's redirect."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=2000, description="the code Instagram appended")
    state: str = Field(min_length=1, max_length=4000, description="the state from /oauth/start, unchanged")


class CompleteCall(BaseModel):
    method: Literal["POST"] = "POST"
    url: str
    body: dict[str, str]
    curl: str


class CallbackLanding(BaseModel):
    """What the callback page shows; it connects nothing."""

    outcome: Literal["authorized", "denied"]
    message: str
    code: str | None = None
    state: str | None = None
    error: str | None = None
    error_reason: str | None = None
    error_description: str | None = None
    complete: CompleteCall | None = None


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


def _connect(
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


def _nonce_key(claims: tokens.OAuthState) -> str:
    return f"oauth-state:{claims.tenant_id}:{claims.nonce}"


def complete(
    session: Session,
    cache: Cache,
    nonces: NonceStore,
    cipher: TokenCipher,
    client: InstagramOAuth,
    cfg: OAuthConfig,
    principal: Principal,
    request: CompleteRequest,
    requeue: Callable[[Session, str, str], object] | None = None,
) -> AccountView:
    """Connects the account for the caller, if and only if the caller started this flow."""
    principal.require("admin")
    try:
        claims = tokens.read_oauth_state(cfg.keys, request.state)
    except InvalidTokenError:
        raise ValidationError(
            "the OAuth state is invalid or expired; start again with GET /v1/accounts/oauth/start",
            code="oauth_invalid_state",
        ) from None
    if claims.tenant_id != principal.tenant_id or claims.user_id != principal.principal_id:
        # A state that is genuine but someone else's is what the account-linking CSRF looks like.
        logger.warning(
            "OAuth state of another principal refused",
            extra={"state_tenant_id": claims.tenant_id, "state_user_id": claims.user_id},
        )
        raise ForbiddenError(
            "this OAuth flow was started by another user or workspace; start your own with "
            "GET /v1/accounts/oauth/start",
            code="oauth_state_mismatch",
        )
    # Spent before the exchange: a failed exchange costs a new start, a replay can never connect.
    remaining = max(1, claims.expires_at - int(time.time()))
    if not nonces.acquire(_nonce_key(claims), remaining):
        raise ConflictError(
            "this OAuth state was already used; start again with GET /v1/accounts/oauth/start",
            code="oauth_state_used",
        )
    return _connect(
        session, cache, cipher, client, cfg, tenant_id=claims.tenant_id, code=request.code, requeue=requeue
    )


def _api_base(cfg: OAuthConfig) -> str:
    """The API's base URL when the redirect URI is this API's own callback (the dashboard-less setup)."""
    if cfg.redirect_uri.endswith(CALLBACK_PATH):
        return cfg.redirect_uri[: -len(CALLBACK_PATH)]
    return "$API"


def callback_landing(
    cfg: OAuthConfig,
    *,
    code: str | None,
    state: str | None,
    error: str | None = None,
    error_reason: str | None = None,
    error_description: str | None = None,
) -> CallbackLanding:
    """What to tell the person Instagram redirected here. Verifies and connects nothing: the state's
    owner finishes with ``complete`` under their own session."""
    if error:
        return CallbackLanding(
            outcome="denied",
            message="Instagram login was not completed, so nothing was connected. "
            "Start again from the dashboard.",
            error=error,
            error_reason=error_reason,
            error_description=error_description,
        )
    if not code or not state:
        raise BadRequestError("code and state are required", code="oauth_invalid_callback")
    code = code.split("#", 1)[0]
    url = _api_base(cfg) + COMPLETE_PATH
    body = {"code": code, "state": state}
    target = url if url.startswith("$") else shlex.quote(url)  # $API stays expandable
    curl = (
        f"curl -X POST {target} "
        '-H "Authorization: Bearer $TOKEN" '
        "-H 'Content-Type: application/json' "
        f"-d {shlex.quote(json.dumps(body))}"
    )
    return CallbackLanding(
        outcome="authorized",
        message="Instagram authorized the account. Nothing is connected yet: finish in the Replyflow "
        f"dashboard, or call POST {COMPLETE_PATH} with this code and state and the bearer token of the "
        "user who started the connection, within 10 minutes.",
        code=code,
        state=state,
        complete=CompleteCall(url=url, body=body, curl=curl),
    )


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}}
pre{{background:#f4f4f4;padding:.75rem;white-space:pre-wrap;word-break:break-all}}
.error{{color:#a40000}}</style>
</head>
<body>
<h1>{title}</h1>
<p>{message}</p>
{details}
</body>
</html>
"""


def callback_page(landing: CallbackLanding) -> str:
    """The landing as a small HTML page; every value is escaped (the query string is anyone's)."""
    e = html.escape
    if landing.outcome == "denied":
        rows = [("error", landing.error), ("error_reason", landing.error_reason)]
        rows.append(("error_description", landing.error_description))
        items = "".join(f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in rows if v)
        return _PAGE.format(
            title="Instagram login was not completed",
            message=e(landing.message),
            details=f'<ul class="error">{items}</ul>',
        )
    curl = landing.complete.curl if landing.complete else ""
    details = (
        f"<h2>code</h2><pre>{e(landing.code or '')}</pre>"
        f"<h2>state</h2><pre>{e(landing.state or '')}</pre>"
        "<h2>Finish without a dashboard</h2>"
        "<p>As the user who started the connection (an admin), with your access token in "
        "<code>$TOKEN</code>:</p>"
        f"<pre>{e(curl)}</pre>"
    )
    return _PAGE.format(title="Almost done", message=e(landing.message), details=details)


def sandbox_connect(
    session: Session,
    cache: Cache,
    nonces: NonceStore,
    cipher: TokenCipher,
    client: InstagramOAuth,
    cfg: OAuthConfig,
    principal: Principal,
    request: SandboxConnectRequest,
    requeue: Callable[[Session, str, str], object] | None = None,
) -> AccountView:
    """start -> sandbox authorize -> complete, server-side, for the caller (the same state checks)."""
    principal.require("admin")
    if not cfg.sandbox_allowed:
        raise ForbiddenError("sandbox connect is not available in production", code="sandbox_disabled")
    state = tokens.issue_oauth_state(cfg.keys, tenant_id=principal.tenant_id, user_id=principal.principal_id)
    extra = {k: v for k, v in (("ig_user_id", request.ig_user_id), ("username", request.username)) if v}
    code = client.authorize_code(_authorize_url(cfg, state, extra))
    return complete(
        session,
        cache,
        nonces,
        cipher,
        client,
        cfg,
        principal,
        CompleteRequest(code=code, state=state),
        requeue=requeue,
    )
