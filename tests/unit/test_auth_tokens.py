"""Signed tokens: claims required, HS256 only, key rotation by kid, purposes kept apart."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from replyflow.adapters.jwt_keys import InvalidTokenError, KeyRing
from replyflow.services import tokens

SECRET_A = "a" * 40
SECRET_B = "b" * 40


def ring(active: str = "k1", keys: dict[str, str] | None = None, audience: str = "replyflow-api") -> KeyRing:
    return KeyRing(keys or {"k1": SECRET_A, "k2": SECRET_B}, active, "replyflow", audience)


def access(keys: KeyRing) -> str:
    return tokens.issue_access_token(keys, user_id="u1", tenant_id="t1", role="admin", ttl_seconds=60)


def test_access_token_round_trip_carries_kid_and_claims() -> None:
    keys = ring()
    token = access(keys)
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    claims = tokens.verify_access_token(keys, token)
    assert (claims.user_id, claims.tenant_id, claims.role) == ("u1", "t1", "admin")


def test_rotation_keeps_old_tokens_valid_until_expiry() -> None:
    old = access(ring(active="k1"))
    rotated = ring(active="k2")
    assert tokens.verify_access_token(rotated, old).user_id == "u1"
    assert jwt.get_unverified_header(access(rotated))["kid"] == "k2"
    retired = ring(active="k2", keys={"k2": SECRET_B})
    with pytest.raises(InvalidTokenError):
        tokens.verify_access_token(retired, old)


def test_tampered_payload_is_refused() -> None:
    token = access(ring())
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "owner"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(InvalidTokenError):
        tokens.verify_access_token(ring(), f"{header}.{forged}.{signature}")


def test_alg_none_is_refused() -> None:
    now = int(time.time())
    claims = {"sub": "u1", "tid": "t1", "role": "owner", "typ": "access", "iat": now, "exp": now + 60}
    claims |= {"iss": "replyflow", "aud": "replyflow-api"}
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": "k1"})
    with pytest.raises(InvalidTokenError):
        tokens.verify_access_token(ring(), unsigned)


def test_expired_wrong_audience_and_missing_claims_are_refused() -> None:
    keys = ring()
    expired = keys.encode({"sub": "u1", "tid": "t1", "role": "admin", "typ": "access"}, ttl_seconds=-10)
    other_audience = ring(audience="someone-else")
    no_exp = jwt.encode(
        {
            "sub": "u1",
            "tid": "t1",
            "role": "admin",
            "typ": "access",
            "iss": "replyflow",
            "aud": "replyflow-api",
        },
        SECRET_A,
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    for bad in (expired, access(other_audience), no_exp, "not-a-jwt", ""):
        with pytest.raises(InvalidTokenError):
            tokens.verify_access_token(keys, bad)


def test_oauth_state_is_not_an_access_token_and_vice_versa() -> None:
    keys = ring()
    state = tokens.issue_oauth_state(keys, tenant_id="t1", user_id="u1")
    assert tokens.verify_oauth_state(keys, state)["tenant_id"] == "t1"
    with pytest.raises(InvalidTokenError):
        tokens.verify_access_token(keys, state)
    with pytest.raises(InvalidTokenError):
        tokens.verify_oauth_state(keys, access(keys))


def test_short_keys_and_unknown_active_kid_are_configuration_errors() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        KeyRing({"k": "short"}, "k", "i", "a")
    with pytest.raises(ValueError, match="not in JWT_SIGNING_KEYS"):
        KeyRing({"k": SECRET_A}, "other", "i", "a")


def test_api_key_format_round_trip() -> None:
    new = tokens.new_api_key()
    assert new.token.startswith("rfk_")
    assert tokens.parse_api_key(new.token) == (new.prefix, new.secret)
    assert tokens.sha256_hex(new.secret) == new.key_hash
    for bad in ("rfk_short_x", "rfk_" + "a" * 12, "Bearer x", new.token.replace("rfk_", "rfx_")):
        assert tokens.parse_api_key(bad) is None
