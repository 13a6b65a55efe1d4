"""Token formats, in one place.

- Access token: a JWT (``typ=access``) with ``sub`` = user id, ``tid`` = tenant id, ``role``, ``sid`` =
  the login session (the refresh-token family) and ``iat_ms`` = issue time in milliseconds (revocation
  epochs compare against it; ``iat`` has whole seconds only).
- Refresh token: ``rft_`` + 256 random bits; only its SHA-256 is stored.
- API key: ``rfk_<prefix>_<secret>``; the prefix (12 hex chars) is the lookup key, the secret has 256
  random bits and is stored as SHA-256 (argon2 is for low-entropy passwords; a random secret needs no
  stretching, and the authorizer must be fast). Compared in constant time.
- Invitation token: ``rfi_`` + 256 random bits; password reset token: ``rfp_`` + 256 random bits.
  Both are single use, sent only by email, and stored as SHA-256 like refresh tokens.
- OAuth state: a JWT (``typ=oauth_state``, its own audience) with tenant, user and a nonce; 10 minutes.
  The signature only proves the API issued it: ``services.oauth.complete`` also binds it to the caller
  (tenant and user) and spends its nonce once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from replyflow.adapters.jwt_keys import InvalidTokenError, KeyRing
from replyflow.clock import epoch_ms

ACCESS = "access"
OAUTH_STATE = "oauth_state"
OAUTH_STATE_TTL_SECONDS = 600
API_KEY_PREFIX = "rfk_"
REFRESH_PREFIX = "rft_"
INVITATION_PREFIX = "rfi_"
PASSWORD_RESET_PREFIX = "rfp_"


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def issue_access_token(
    keys: KeyRing,
    *,
    user_id: str,
    tenant_id: str,
    role: str,
    ttl_seconds: int,
    session_id: str | None = None,
) -> str:
    claims: dict[str, object] = {
        "sub": user_id,
        "tid": tenant_id,
        "role": role,
        "typ": ACCESS,
        "iat_ms": epoch_ms(),
    }
    if session_id:
        claims["sid"] = session_id
    return keys.encode(claims, ttl_seconds=ttl_seconds)


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    tenant_id: str
    role: str
    issued_at_ms: int
    session_id: str | None = None


def verify_access_token(keys: KeyRing, token: str) -> AccessClaims:
    claims = keys.decode(token, typ=ACCESS)
    user_id, tenant_id, role = claims.get("sub"), claims.get("tid"), claims.get("role")
    if not (isinstance(user_id, str) and isinstance(tenant_id, str) and isinstance(role, str)):
        raise InvalidTokenError("missing claims")
    issued_at_ms = claims.get("iat_ms")
    if not isinstance(issued_at_ms, int) or isinstance(issued_at_ms, bool):
        issued_at_ms = int(claims["iat"]) * 1000  # a token from before iat_ms existed
    session_id = claims.get("sid")
    return AccessClaims(
        user_id,
        tenant_id,
        role,
        issued_at_ms,
        session_id if isinstance(session_id, str) and session_id else None,
    )


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def new_invitation_token() -> str:
    return INVITATION_PREFIX + secrets.token_urlsafe(32)


def new_password_reset_token() -> str:
    return PASSWORD_RESET_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class NewApiKey:
    prefix: str
    secret: str
    key_hash: str

    @property
    def token(self) -> str:
        return f"{API_KEY_PREFIX}{self.prefix}_{self.secret}"


def new_api_key() -> NewApiKey:
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return NewApiKey(prefix, secret, sha256_hex(secret))


def parse_api_key(token: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None."""
    if not token.startswith(API_KEY_PREFIX):
        return None
    prefix, sep, secret = token[len(API_KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != 12 or len(secret) < 32:
        return None
    return prefix, secret


def oauth_state_audience(keys: KeyRing) -> str:
    return f"{keys.audience}:oauth-state"


def issue_oauth_state(keys: KeyRing, *, tenant_id: str, user_id: str) -> str:
    claims = {"sub": user_id, "tid": tenant_id, "typ": OAUTH_STATE, "nonce": secrets.token_hex(12)}
    return keys.encode(claims, ttl_seconds=OAUTH_STATE_TTL_SECONDS, audience=oauth_state_audience(keys))


@dataclass(frozen=True)
class OAuthState:
    tenant_id: str
    user_id: str
    nonce: str
    expires_at: int  # epoch seconds


def read_oauth_state(keys: KeyRing, state: str) -> OAuthState:
    """The verified claims of a state; ``InvalidTokenError`` when tampered, expired or incomplete."""
    claims = keys.decode(state, audience=oauth_state_audience(keys), typ=OAUTH_STATE)
    tenant_id, user_id, nonce, exp = (
        claims.get("tid"),
        claims.get("sub"),
        claims.get("nonce"),
        claims.get("exp"),
    )
    if not (isinstance(tenant_id, str) and tenant_id and isinstance(user_id, str) and user_id):
        raise InvalidTokenError("missing claims")
    if not (isinstance(nonce, str) and nonce and isinstance(exp, int)):
        raise InvalidTokenError("missing claims")
    return OAuthState(tenant_id, user_id, nonce, exp)


def verify_oauth_state(keys: KeyRing, state: str) -> dict[str, str]:
    claims = read_oauth_state(keys, state)
    return {"tenant_id": claims.tenant_id, "user_id": claims.user_id, "nonce": claims.nonce}
