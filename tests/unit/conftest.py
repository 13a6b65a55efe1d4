"""The unit tier opens no sockets: every test here runs with pytest-socket's ``--disable-socket``
semantics, so a test that reaches for the network (or a server on loopback) fails at once instead of
depending on the machine. Fakes stand in for every service (``httpx.MockTransport``, fakeredis,
SQLite files, in-memory brokers); tests that need a real socket belong in ``tests/integration``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import urllib3.util.connection  # noqa: F401
from pytest_socket import disable_socket, enable_socket

# urllib3 (boto3's HTTP stack) probes for IPv6 by opening a socket when first imported; imported here,
# before any socket is blocked, it probes once for the whole session instead of failing inside a test.


@pytest.fixture(autouse=True)
def _no_sockets() -> Iterator[None]:
    disable_socket(allow_unix_socket=False)
    yield
    enable_socket()
