"""Secrets at rest: AES-256-GCM with a random 96-bit nonce; the account id is bound as associated data
so a ciphertext copied onto another row does not decrypt."""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"


class TokenCipher:
    def __init__(self, key_b64: str) -> None:
        key = base64.urlsafe_b64decode(key_b64)
        if len(key) != 32:
            raise ValueError("TOKEN_ENCRYPTION_KEY must be 32 bytes, urlsafe-base64 encoded")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, *, context: str) -> str:
        if blob[:1] != _VERSION:
            raise ValueError("unknown token ciphertext version")
        return self._aead.decrypt(blob[1:13], blob[13:], context.encode()).decode()
