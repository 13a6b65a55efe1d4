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
    # At module level, or the one ``make_handler`` returns over its composition root.
    entry = next(
        node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "lambda_handler"
    )
    decorators = [ast.unparse(decorator) for decorator in entry.decorator_list]
    assert any(d.startswith("logger.inject_lambda_context") for d in decorators), decorators


SCANNED = ("layers", "functions", "local", "docs", "tests", "bench", "infra", "events", ".ci")
SCANNED_FILES = ("README.md", "template.yaml", "Makefile", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".json", ".txt", ".ini", ".mako", ""}
# Spelled in pieces so that this file does not match itself.
OUTSIDE_CITATIONS = (
    "../" + "shared",
    "shared" + "/reference",
    "DESIGN" + ".md",
    "the " + "reference",
    "\u00a7",
)
DOC_ANCHOR = re.compile(r"(?:docs/)?\b([a-z_]+\.md)#([a-z0-9-]+)")


def _project_text_files() -> list[Path]:
    files = [ROOT / name for name in SCANNED_FILES]
    for folder in SCANNED:
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                files.append(path)
    return files


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_nothing_cites_a_source_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _project_text_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if any(citation in line for citation in OUTSIDE_CITATIONS)
    ]
    assert found == []


def test_every_docs_anchor_named_anywhere_exists() -> None:
    anchors = {
        doc.name: {_slug(line.lstrip("#")) for line in doc.read_text().splitlines() if line.startswith("#")}
        for doc in (ROOT / "docs").glob("*.md")
    }
    missing = [
        f"{path.relative_to(ROOT)}: {doc}#{anchor}"
        for path in _project_text_files()
        for doc, anchor in DOC_ANCHOR.findall(path.read_text(errors="replace"))
        if doc in anchors and anchor not in anchors[doc]
    ]
    assert missing == []
