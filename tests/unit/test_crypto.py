"""Tokens at rest: a blob opens only under its key and for its account, and a wrong key is told apart
from one bad row."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from replyflow.adapters.crypto import TokenCipher, WrongKeyError

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def cipher(key: bytes = KEY) -> TokenCipher:
    return TokenCipher(base64.urlsafe_b64encode(key).decode())


def test_a_token_round_trips_for_its_account() -> None:
    blob = cipher().encrypt("IGAA-token", context="acct-1")
    assert b"IGAA-token" not in blob
    assert cipher().decrypt(blob, context="acct-1") == "IGAA-token"


def test_a_blob_copied_onto_another_account_does_not_open() -> None:
    blob = cipher().encrypt("IGAA-token", context="acct-1")
    with pytest.raises(InvalidTag):
        cipher().decrypt(blob, context="acct-2")


def test_a_wrong_key_is_a_configuration_error_not_a_bad_row() -> None:
    blob = cipher().encrypt("IGAA-token", context="acct-1")
    with pytest.raises(WrongKeyError):
        cipher(OTHER_KEY).decrypt(blob, context="acct-1")
    assert not issubclass(WrongKeyError, ValueError)  # code that skips one bad row must not swallow it


def test_version_1_blobs_without_a_key_id_still_open() -> None:
    nonce = os.urandom(12)
    blob = b"\x01" + nonce + AESGCM(KEY).encrypt(nonce, b"IGAA-old", b"acct-1")
    assert cipher().decrypt(blob, context="acct-1") == "IGAA-old"
    with pytest.raises(InvalidTag):  # no key id: a wrong key looks like a bad row, as before
        cipher(OTHER_KEY).decrypt(blob, context="acct-1")


def test_an_unknown_version_is_refused_as_a_row_that_does_not_open() -> None:
    with pytest.raises(InvalidTag):
        cipher().decrypt(b"\x09" + os.urandom(40), context="acct-1")
