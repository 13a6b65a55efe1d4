"""Who is calling: access-token lookup and the ``/me`` / ``/<IG_ID>`` node check
(docs/instagram.md#send-api, #tokens-and-oauth)."""

from __future__ import annotations

from local.sandbox import errors
from local.sandbox.protocol import Request
from local.sandbox.state import Account, SandboxState, Token

BEARER_PREFIX = "bearer "


def token_value(request: Request) -> str | None:
    header = request.header("authorization") or ""
    if header.lower().startswith(BEARER_PREFIX):
        return header[len(BEARER_PREFIX) :].strip() or None
    return request.query.get("access_token") or None


def authenticate(state: SandboxState, request: Request, value: str | None = None) -> Token:
    """The caller's live token; raises code 190 (467 unknown, 463 expired) otherwise."""
    value = value or token_value(request)
    if not value:
        raise errors.missing_token()
    token = state.tokens.get(value)
    if token is None:
        raise errors.invalid_token()
    if state.token_expired(token):
        raise errors.expired_token(min(token.expires_at, state.now()), state.now())
    return token


def account_for_node(state: SandboxState, node: str, token: Token) -> Account:
    """The account a path node names, which must be the token's own (code 200 otherwise)."""
    own = state.ensure_account(token.ig_user_id)
    if node in ("me", own.ig_user_id, own.app_scoped_id):
        return own
    raise errors.permission_denied(node)
