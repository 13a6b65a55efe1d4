"""The gates that keep the house in order, checked as tests so they cannot drift silently."""

from __future__ import annotations

import ast
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


@pytest.mark.parametrize(
    "handler", sorted((ROOT / "functions").glob("*/handler.py")), ids=lambda p: p.parent.name
)
def test_every_handler_logs_its_lambda_context(handler: Path) -> None:
    tree = ast.parse(handler.read_text())
    entry = next(
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "lambda_handler"
    )
    decorators = [ast.unparse(decorator) for decorator in entry.decorator_list]
    assert any(d.startswith("logger.inject_lambda_context") for d in decorators), decorators
