"""Secrets at rest: AES-256-GCM with a random 96-bit nonce; the account id is bound as associated data
so a ciphertext copied onto another row does not decrypt.

A blob names the key that sealed it (version 2: a 4-byte key id, the first bytes of a SHA-256 of the
key, before the nonce), so a wrong ``TOKEN_ENCRYPTION_KEY`` is told apart from one bad row: the first
raises :class:`WrongKeyError` (a configuration error: every row would fail), the second the cipher's
``InvalidTag`` (this row does not open; a blob of no known version too). Version 1 blobs (no key id)
still decrypt; every new blob is version 2, so the token refresh job converts them as it renews
tokens.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from replyflow.errors import ReplyflowError

_V1 = b"\x01"  # nonce + ciphertext
_V2 = b"\x02"  # key id + nonce + ciphertext
_KEY_ID_BYTES = 4


class WrongKeyError(ReplyflowError):
    """The blob was sealed under another key than the configured one (not a ``ValueError``: callers
    that give up on one unreadable row must not swallow it)."""

    code = "token_key_mismatch"


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"replyflow-token-key-id:" + key).digest()[:_KEY_ID_BYTES]


class TokenCipher:
    def __init__(self, key_b64: str) -> None:
        key = base64.urlsafe_b64decode(key_b64)
        if len(key) != 32:
            raise ValueError("TOKEN_ENCRYPTION_KEY must be 32 bytes, urlsafe-base64 encoded")
        self._aead = AESGCM(key)
        self._key_id = key_id(key)

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        nonce = os.urandom(12)
        return _V2 + self._key_id + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, *, context: str) -> str:
        version, body = blob[:1], blob[1:]
        if version == _V2:
            if body[:_KEY_ID_BYTES] != self._key_id:
                raise WrongKeyError("the token was encrypted under another TOKEN_ENCRYPTION_KEY")
            body = body[_KEY_ID_BYTES:]
        elif version != _V1:
            raise InvalidTag("not a token ciphertext of any known version")  # this row does not open
        return self._aead.decrypt(body[:12], body[12:], context.encode()).decode()
