"""The gates that keep the house in order, checked as tests so they cannot drift silently."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from pytest_socket import SocketBlockedError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.filterwarnings("ignore:A test tried to use socket.socket")
def test_the_unit_tier_cannot_open_sockets() -> None:
    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def test_make_pr_chains_every_gate() -> None:
    makefile = (ROOT / "Makefile").read_text()
    pr = re.search(r"^pr:([^#\n]*)", makefile, re.MULTILINE)
    assert pr is not None
    assert pr.group(1).split() == ["lint", "typecheck", "complexity", "validate", "test"]
    assert "xenon --no-assert --max-absolute C" in makefile
