"""Instagram Login and account subscriptions (docs/instagram.md#tokens-and-oauth, #webhook-handshake).

The sandbox user consents at once: ``/oauth/authorize`` redirects straight back with a single-use,
one-hour code. The code buys a one-hour token, which buys a 60-day token, which can be refreshed once
it is a day old and as long as it has not expired. ``user_id`` from the code exchange and ``id`` from
``/me`` are app-scoped ids that differ from the professional account id (``/me?fields=user_id``), as
docs/instagram.md#tokens-and-oauth warns; ``app_scoped_ids=False`` makes them equal.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any
from urllib.parse import urlencode

from local.sandbox import errors
from local.sandbox.auth import account_for_node, authenticate
from local.sandbox.protocol import Request, Response
from local.sandbox.state import (
    AUTH_CODE_TTL_S,
    DEFAULT_SCOPES,
    LONG_TOKEN_TTL_S,
    SHORT_TOKEN_TTL_S,
    AuthCode,
    SandboxState,
    Token,
)

# docs/instagram.md#tokens-and-oauth: a long-lived token can be refreshed once it is at least 24 h old.
REFRESH_MIN_AGE_S = 24 * 3600
REFRESH_PERMISSION = "instagram_business_basic"
# docs/instagram.md#setup-and-scopes: the current scope names (business_* were retired on 2025-01-27).
KNOWN_SCOPES = frozenset(
    {
        *DEFAULT_SCOPES,
        "instagram_business_content_publish",
        "instagram_business_manage_insights",
    }
)
# Instagram Login webhook fields an account can be subscribed to (docs/instagram.md#messaging-events,
# #webhook-handshake).
SUBSCRIBABLE_FIELDS = frozenset(
    {
        "comments",
        "live_comments",
        "mentions",
        "messages",
        "message_edit",
        "message_reactions",
        "messaging_handover",
        "messaging_optins",
        "messaging_postbacks",
        "messaging_referral",
        "messaging_seen",
        "standby",
        "story_insights",
    }
)
SANDBOX_APP_NAME = "Replyflow sandbox app"


def authorize(state: SandboxState, request: Request) -> Response:
    query = request.query
    if query.get("client_id") != state.app_id:
        raise errors.invalid_app("Invalid platform app")
    redirect_uri = query.get("redirect_uri")
    if not redirect_uri:
        raise errors.invalid_param("The parameter redirect_uri is required")
    if query.get("response_type") != "code":
        raise errors.invalid_param("Invalid response_type: only 'code' is supported")
    scopes = _scopes(query.get("scope"))
    if query.get("deny"):
        denial = {
            "error": "access_denied",
            "error_reason": "user_denied",
            "error_description": "Permissions error",
        }
        return _redirect(redirect_uri, {**denial, **_state_param(query)})
    ig_user_id = query.get("ig_user_id") or f"17841{state.rng.randrange(10**10, 10**11)}"
    state.ensure_account(ig_user_id, query.get("username"))
    code = AuthCode(f"AQ{secrets.token_urlsafe(32)}", ig_user_id, redirect_uri, scopes, state.now())
    state.auth_codes[code.code] = code
    return _redirect(redirect_uri, {"code": code.code, **_state_param(query)})


def exchange_code(state: SandboxState, request: Request) -> Response:
    """``POST /oauth/access_token`` on api.instagram.com: code -> short-lived token."""
    try:
        return _exchange_code(state, request)
    except errors.SandboxGraphError as exc:
        raise dataclasses.replace(exc, legacy=True) from None


def _exchange_code(state: SandboxState, request: Request) -> Response:
    try:
        params = request.params()
    except (ValueError, UnicodeDecodeError):
        raise errors.invalid_param("The request body could not be parsed") from None
    _check_app(state, params, check_id=True)
    if params.get("grant_type") != "authorization_code":
        raise errors.invalid_param("Invalid grant_type: expected authorization_code")
    code = state.auth_codes.get(str(params.get("code", "")))
    if code is None or code.used:
        subcode = errors.SUBCODE_CODE_USED if code is not None else None
        raise errors.invalid_param("Matching code was not found or was already used", subcode)
    if state.now() - code.created_at > AUTH_CODE_TTL_S:
        raise errors.invalid_param("This authorization code has expired.", errors.SUBCODE_CODE_EXPIRED)
    if params.get("redirect_uri") != code.redirect_uri:
        message = (
            "Error validating verification code. Please make sure your redirect_uri is identical to the one "
            "you used in the OAuth dialog request"
        )
        raise errors.invalid_param(message, errors.SUBCODE_REDIRECT_MISMATCH)
    code.used = True
    token = state.new_token(code.ig_user_id, "short", ttl_s=SHORT_TOKEN_TTL_S, permissions=code.permissions)
    account = state.ensure_account(code.ig_user_id)
    grant = {
        "access_token": token.value,
        "user_id": account.app_scoped_id,
        "permissions": ",".join(code.permissions),
    }
    return Response(200, {"data": [grant]})


def exchange_long_lived(state: SandboxState, request: Request) -> Response:
    """``GET /access_token?grant_type=ig_exchange_token``: short-lived -> 60-day token."""
    if request.query.get("grant_type") != "ig_exchange_token":
        raise errors.invalid_param("Invalid grant_type: expected ig_exchange_token")
    _check_app(state, request.query, check_id=False)
    token = authenticate(state, request)
    return _long_lived(state, token)


def refresh(state: SandboxState, request: Request) -> Response:
    """``GET /refresh_access_token``: only a live long-lived token at least a day old."""
    if request.query.get("grant_type") != "ig_refresh_token":
        raise errors.invalid_param("Invalid grant_type: expected ig_refresh_token")
    token = authenticate(state, request)
    if token.kind != "long":
        raise errors.invalid_param("Only long-lived access tokens can be refreshed")
    if REFRESH_PERMISSION not in token.permissions:
        raise errors.missing_permission(REFRESH_PERMISSION)
    if state.now() - token.issued_at < REFRESH_MIN_AGE_S:
        raise errors.invalid_param("The access token must be at least 24 hours old to be refreshed")
    return _long_lived(state, token)


def issue_long_lived(
    state: SandboxState, ig_user_id: str, username: str, *, expires_in: float, issued_at: float | None
) -> Token:
    """A long-lived token minted outside OAuth (demo seed, tests)."""
    state.ensure_account(ig_user_id, username)
    return state.new_token(ig_user_id, "long", ttl_s=expires_in, issued_at=issued_at)


def get_subscriptions(state: SandboxState, request: Request, node: str) -> Response:
    account = account_for_node(state, node, authenticate(state, request))
    if account.subscribed_fields is None:
        return Response(200, {"data": []})
    entry = {
        "id": state.app_id,
        "name": SANDBOX_APP_NAME,
        "subscribed_fields": list(account.subscribed_fields),
    }
    return Response(200, {"data": [entry]})


def subscribe(state: SandboxState, request: Request, node: str) -> Response:
    account = account_for_node(state, node, authenticate(state, request))
    try:
        raw = request.params().get("subscribed_fields")
    except (ValueError, UnicodeDecodeError):
        raise errors.invalid_param("The request body could not be parsed") from None
    fields = _field_list(raw)
    if not fields:
        raise errors.invalid_param("The parameter subscribed_fields is required")
    unknown = sorted(set(fields) - SUBSCRIBABLE_FIELDS)
    if unknown:
        allowed = ", ".join(sorted(SUBSCRIBABLE_FIELDS))
        raise errors.invalid_param(f"Param subscribed_fields[{unknown[0]}] must be one of {{{allowed}}}")
    account.subscribed_fields = list(dict.fromkeys(fields))
    return Response(200, {"success": True})


def unsubscribe(state: SandboxState, request: Request, node: str) -> Response:
    account = account_for_node(state, node, authenticate(state, request))
    account.subscribed_fields = None
    return Response(200, {"success": True})


def _long_lived(state: SandboxState, token: Token) -> Response:
    new = state.new_token(token.ig_user_id, "long", ttl_s=LONG_TOKEN_TTL_S, permissions=token.permissions)
    return Response(200, {"access_token": new.value, "token_type": "bearer", "expires_in": LONG_TOKEN_TTL_S})


def _check_app(state: SandboxState, params: Any, *, check_id: bool) -> None:
    if check_id and str(params.get("client_id", "")) != state.app_id:
        raise errors.invalid_app("Invalid platform app")
    if not secrets.compare_digest(str(params.get("client_secret", "")), state.app_secret):
        raise errors.invalid_app("Error validating client secret.")


def _scopes(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return DEFAULT_SCOPES
    scopes = tuple(dict.fromkeys(_field_list(raw.replace(" ", ","))))
    unknown = [scope for scope in scopes if scope not in KNOWN_SCOPES]
    if unknown:
        raise errors.invalid_param(f"Invalid Scopes: {', '.join(unknown)}")
    return scopes


def _field_list(raw: Any) -> list[str]:
    if isinstance(raw, list):
        return [str(item).strip() for item in raw if str(item).strip()]
    if isinstance(raw, str):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return []


def _state_param(query: Any) -> dict[str, str]:
    return {"state": query["state"]} if query.get("state") else {}


def _redirect(redirect_uri: str, params: dict[str, str]) -> Response:
    separator = "&" if "?" in redirect_uri else "?"
    return Response(302, None, {"Location": f"{redirect_uri}{separator}{urlencode(params)}#_"})
