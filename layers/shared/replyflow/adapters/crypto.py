"""Secrets at rest: AES-256-GCM with a random 96-bit nonce; the account id is bound as associated data
so a ciphertext copied onto another row does not decrypt.

A blob names the key that sealed it (version 2: a 4-byte key id, the first bytes of a SHA-256 of the
key, before the nonce), so a wrong ``TOKEN_ENCRYPTION_KEY`` is told apart from one bad row: the first
raises :class:`WrongKeyError` (a configuration error: every row would fail), the second the cipher's
``InvalidTag`` (this row does not open; a blob of no known version too). Version 1 blobs (no key id)
still decrypt; every new blob is version 2, so the token refresh job converts them as it renews
tokens.

Rotation: the cipher holds one sealing key and any number of previous keys; a version 2 blob opens
under whichever key its id names, so blobs sealed before a rotation keep decrypting while the token
refresh job re-seals them under the new key. :class:`RotatingCipher` takes its keys from the app's
secrets at each use and, on a blob of an unknown key id, re-reads the secrets once (a rotation that
another function already uses) before the failure stands.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from replyflow.errors import ReplyflowError

if TYPE_CHECKING:
    from replyflow.adapters.secrets import AppSecrets

_V1 = b"\x01"  # nonce + ciphertext
_V2 = b"\x02"  # key id + nonce + ciphertext
_KEY_ID_BYTES = 4


class WrongKeyError(ReplyflowError):
    """The blob was sealed under another key than the configured one (not a ``ValueError``: callers
    that give up on one unreadable row must not swallow it)."""

    code = "token_key_mismatch"


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"replyflow-token-key-id:" + key).digest()[:_KEY_ID_BYTES]


def _aead(key_b64: str) -> tuple[bytes, AESGCM]:
    key = base64.urlsafe_b64decode(key_b64)
    if len(key) != 32:
        raise ValueError("TOKEN_ENCRYPTION_KEY must be 32 bytes, urlsafe-base64 encoded")
    return key_id(key), AESGCM(key)


class TokenCipher:
    """Seals under ``key_b64``; opens blobs of it and of every key in ``previous``."""

    def __init__(self, key_b64: str, previous: tuple[str, ...] | list[str] = ()) -> None:
        self._key_id, self._aead = _aead(key_b64)
        self._keys = dict([(self._key_id, self._aead)] + [_aead(k) for k in previous])

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        nonce = os.urandom(12)
        return _V2 + self._key_id + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, *, context: str) -> str:
        version, body = blob[:1], blob[1:]
        if version == _V2:
            aead = self._keys.get(body[:_KEY_ID_BYTES])
            if aead is None:
                raise WrongKeyError("the token was encrypted under a key that is not configured")
            body = body[_KEY_ID_BYTES:]
            return aead.decrypt(body[:12], body[12:], context.encode()).decode()
        if version != _V1:
            raise InvalidTag("not a token ciphertext of any known version")  # this row does not open
        for aead in self._keys.values():  # version 1 names no key: the sealing key first
            try:
                return aead.decrypt(body[:12], body[12:], context.encode()).decode()
            except InvalidTag:
                continue
        raise InvalidTag("no configured key opens this version 1 blob")


class RotatingCipher(TokenCipher):
    """A :class:`TokenCipher` over the app's current secrets (re-read when their cache expires)."""

    def __init__(self, secrets: AppSecrets) -> None:
        self._secrets = secrets
        self._built: tuple[tuple[str, ...], TokenCipher] | None = None

    def _cipher(self, keys: list[str]) -> TokenCipher:
        built = self._built
        if built is None or built[0] != tuple(keys):
            built = (tuple(keys), TokenCipher(keys[0], keys[1:]))
            self._built = built
        return built[1]

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        return self._cipher(self._secrets.get().token_keys).encrypt(plaintext, context=context)

    def decrypt(self, blob: bytes, *, context: str) -> str:
        try:
            return self._cipher(self._secrets.get().token_keys).decrypt(blob, context=context)
        except WrongKeyError:
            fresh = self._secrets.refresh()
            if fresh is None:
                raise
            return self._cipher(fresh.token_keys).decrypt(blob, context=context)
