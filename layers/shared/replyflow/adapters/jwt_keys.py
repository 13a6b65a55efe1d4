"""Signed tokens with rotating keys (PyJWT, HS256 only).

Invariants:
- every token carries ``kid`` in its header, and ``exp``, ``iat``, ``iss`` and ``aud`` in its claims;
  decoding requires all four, so a token without them is refused;
- tokens are signed with the active key; any key in the key ring verifies, so rotating the active key
  leaves tokens signed with the previous one valid until they expire (remove the old key after one
  access-token TTL);
- ``algorithms=["HS256"]`` is passed explicitly: ``alg: none`` and algorithm confusion are refused;
- the purpose (``typ``) is part of the audience check: an OAuth state can never pass as an access token.

This module imports PyJWT only: the authorizer uses it and must stay lean.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from replyflow.errors import UnauthorizedError

ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "iss", "aud", "sub"]


class InvalidTokenError(UnauthorizedError):
    """The token is malformed, expired, tampered with, for another audience or signed by an unknown key."""

    code = "invalid_token"


@dataclass(frozen=True)
class KeyRing:
    keys: dict[str, str]
    active_kid: str
    issuer: str
    audience: str

    def __post_init__(self) -> None:
        if self.active_kid not in self.keys:
            raise ValueError(f"JWT_ACTIVE_KID {self.active_kid!r} is not in JWT_SIGNING_KEYS")
        for kid, secret in self.keys.items():
            if len(secret.encode()) < 32:
                raise ValueError(f"JWT signing key {kid!r} must be at least 32 bytes")

    def encode(self, claims: dict[str, Any], *, ttl_seconds: int, audience: str | None = None) -> str:
        now = int(time.time())
        payload = {
            **claims,
            "iat": now,
            "exp": now + ttl_seconds,
            "iss": self.issuer,
            "aud": audience or self.audience,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(
            payload, self.keys[self.active_kid], algorithm=ALGORITHM, headers={"kid": self.active_kid}
        )

    def decode(self, token: str, *, audience: str | None = None, typ: str | None = None) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidTokenError("malformed token") from error
        kid = header.get("kid")
        secret = self.keys.get(kid) if isinstance(kid, str) else None
        if secret is None:
            raise InvalidTokenError("unknown signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                audience=audience or self.audience,
                issuer=self.issuer,
                options={"require": _REQUIRED},
            )
        except jwt.PyJWTError as error:
            raise InvalidTokenError(str(error)) from error
        if typ is not None and claims.get("typ") != typ:
            raise InvalidTokenError("wrong token type")
        return claims
