"""Signed tokens with rotating keys (PyJWT, HS256 only).

Invariants:
- every token carries ``kid`` in its header, and ``exp``, ``iat``, ``iss`` and ``aud`` in its claims;
  decoding requires all four, so a token without them is refused;
- tokens are signed with the active key; any key in the key ring verifies, so rotating the active key
  leaves tokens signed with the previous one valid until they expire (remove the old key after one
  access-token TTL);
- ``algorithms=["HS256"]`` is passed explicitly: ``alg: none`` and algorithm confusion are refused;
- the purpose (``typ``) is part of the audience check: an OAuth state can never pass as an access token;
- a ring built with ``reload`` (the app's secrets, read at run time) asks it once for a fresh ring when
  a token names an unknown kid or its signature does not verify (keys rotated since they were cached);
  when that brings no other keys the failure stands.

This module imports PyJWT only: the authorizer uses it and must stay lean.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt

from replyflow.errors import UnauthorizedError

if TYPE_CHECKING:
    from replyflow.adapters.secrets import AppSecrets, SecretValues

ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "iss", "aud", "sub"]


class InvalidTokenError(UnauthorizedError):
    """The token is malformed, expired, tampered with, for another audience or signed by an unknown key."""

    code = "invalid_token"

    def __init__(
        self, message: str, *, key_related: bool = False, details: Any = None, code: str | None = None
    ) -> None:
        super().__init__(message, details=details, code=code)
        self.key_related = key_related  # unknown kid or bad signature: fresher keys may verify it


@dataclass(frozen=True)
class KeyRing:
    keys: dict[str, str]
    active_kid: str
    issuer: str
    audience: str
    reload: Callable[[], KeyRing | None] | None = field(default=None, compare=False, repr=False)

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
            return self._decode(token, audience=audience, typ=typ)
        except InvalidTokenError as error:
            if self.reload is None or not error.key_related:
                raise
            fresh = self.reload()
            if fresh is None or fresh.keys == self.keys:
                raise
            return fresh._decode(token, audience=audience, typ=typ)

    def _decode(self, token: str, *, audience: str | None, typ: str | None) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidTokenError("malformed token") from error
        kid = header.get("kid")
        secret = self.keys.get(kid) if isinstance(kid, str) else None
        if secret is None:
            raise InvalidTokenError("unknown signing key", key_related=True)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                audience=audience or self.audience,
                issuer=self.issuer,
                options={"require": _REQUIRED},
            )
        except jwt.InvalidSignatureError as error:
            raise InvalidTokenError(str(error), key_related=True) from error
        except jwt.PyJWTError as error:
            raise InvalidTokenError(str(error)) from error
        if typ is not None and claims.get("typ") != typ:
            raise InvalidTokenError("wrong token type")
        return claims


def key_ring_of(
    secrets: AppSecrets, *, issuer: str, audience: str, values: SecretValues | None = None
) -> KeyRing:
    """The ring of ``values`` (the app's current secrets when None); it reloads them once on a
    key-related failure."""

    def ring(values: SecretValues, *, reloads: bool) -> KeyRing:
        return KeyRing(
            keys=dict(values.jwt_signing_keys),
            active_kid=values.jwt_active_kid,
            issuer=issuer,
            audience=audience,
            reload=reload if reloads else None,
        )

    def reload() -> KeyRing | None:
        fresh = secrets.refresh()
        return None if fresh is None else ring(fresh, reloads=False)

    return ring(secrets.get() if values is None else values, reloads=True)
