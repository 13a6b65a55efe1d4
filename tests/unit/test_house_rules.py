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


# The data-access rule ------------------------------------------------------------------------------

PACKAGE = ROOT / "layers" / "shared" / "replyflow"
APP_CODE = (PACKAGE, ROOT / "functions", ROOT / "local")
SQL_CONSTRUCTS = frozenset({"select", "update", "delete", "insert", "text"})
SQL_SESSION_CALLS = frozenset({"execute", "scalar", "scalars"})
# Where SQL may live besides the repositories: the database layer's own internals.
SQL_HOMES = {
    "layers/shared/replyflow/db/repositories/": "the repositories: every query of the application",
    "layers/shared/replyflow/db/migrations/": "Alembic migrations are DDL by nature",
    "layers/shared/replyflow/db/provision.py": "deploy-time DDL (database and user creation)",
}


def _python_files(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _sql_uses(tree: ast.AST) -> list[str]:
    """SQLAlchemy statement constructs imported or used through a module alias, and statements run on
    a session (``session.execute/scalar/scalars``), each as ``line: what``."""
    aliases: set[str] = set()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update(a.asname or a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found.extend(f"{node.lineno}: import {a.name}" for a in node.names if a.name in SQL_CONSTRUCTS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in SQL_CONSTRUCTS and _dotted(node.value) in aliases:
            found.append(f"{node.lineno}: {_dotted(node)}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_SESSION_CALLS
            and _dotted(node.func.value).split(".")[-1].lstrip("_").endswith("session")
        ):
            found.append(f"{node.lineno}: {_dotted(node.func)}()")
    return sorted(found, key=lambda item: (int(item.split(":", 1)[0]), item))


def test_sql_lives_only_in_the_repositories() -> None:
    found = [
        f"{_rel(path)}:{use}"
        for path in _python_files(*APP_CODE)
        if not any(_rel(path).startswith(home) for home in SQL_HOMES)
        for use in _sql_uses(ast.parse(path.read_text()))
    ]
    assert found == []


def test_the_sql_check_sees_each_form_it_forbids() -> None:
    source = (
        "import sqlalchemy as sa\n"
        "from sqlalchemy import select, func\n"
        "from sqlalchemy.dialects.mysql import insert\n"
        "def f(session, self):\n"
        "    session.execute(sa.text('SELECT 1'))\n"
        "    self._session.scalars(select(1))\n"
        "    func.count()\n"
    )
    assert _sql_uses(ast.parse(source)) == [
        "2: import select",
        "3: import insert",
        "5: sa.text",
        "5: session.execute()",
        "6: self._session.scalars()",
    ]


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an import names, at any depth (inside functions and ``TYPE_CHECKING`` too)."""
    modules: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
    return modules


# Modules that the services build on and so may not reach back into them (or into the wiring).
BELOW_THE_SERVICES = (
    "adapters",
    "db",
    "domain",
    "ports.py",
    "clock.py",
    "errors.py",
    "ids.py",
    "settings.py",
)


@pytest.mark.parametrize("layer", BELOW_THE_SERVICES)
def test_adapters_and_the_layers_below_never_import_services(layer: str) -> None:
    target = PACKAGE / layer
    files = [target] if target.is_file() else _python_files(target)
    found = [
        f"{_rel(path)}:{line}: {module}"
        for path in files
        for line, module in _imported_modules(ast.parse(path.read_text()))
        if module.startswith(("replyflow.services", "replyflow.wiring"))
    ]
    assert found == []


CLIENT_LIBRARIES = ("redis", "boto3", "botocore", "httpx", "fakeredis")


def test_services_reach_redis_aws_and_http_only_through_adapters() -> None:
    """A service takes its Redis, AWS and HTTP clients as ports; the classes that speak to them live
    in ``adapters/`` (``RedisRevocationStore``, ``RedisFixedWindowLimiter``, ...)."""
    found = [
        f"{_rel(path)}:{line}: {module}"
        for path in _python_files(PACKAGE / "services")
        for line, module in _imported_modules(ast.parse(path.read_text()))
        if module.split(".")[0] in CLIENT_LIBRARIES
    ]
    assert found == []


def test_the_client_library_check_sees_plain_and_from_imports() -> None:
    tree = ast.parse("import redis\nfrom boto3 import client\nimport httpx as h\nfrom json import dumps\n")
    seen = [module for _line, module in _imported_modules(tree) if module.split(".")[0] in CLIENT_LIBRARIES]
    assert seen == ["redis", "boto3.client", "httpx"]


# A handler may state the narrow view it takes of its composition root (so a test can hand it a fake
# service); that is the handler's own signature, not a port.
HANDLER_VIEWS = {"functions/sender/handler.py", "functions/webhook/handler.py"}


def test_every_protocol_is_declared_in_the_ports_module() -> None:
    found = [
        f"{_rel(path)}:{node.lineno}: {node.name}"
        for path in _python_files(*APP_CODE)
        if path != PACKAGE / "ports.py" and _rel(path) not in HANDLER_VIEWS
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and any(_dotted(base).endswith("Protocol") for base in node.bases)
    ]
    assert found == []


TRANSACTION_EVENTS = frozenset(
    {"after_commit", "after_rollback", "after_soft_rollback", "after_transaction_end"}
)


def test_one_after_commit_helper() -> None:
    """Session transaction events are listened to in ``db/after_commit.py`` alone; everything that
    must happen after a commit goes through its ``after_commit``."""
    found = [
        f"{_rel(path)}:{node.lineno}"
        for path in _python_files(*APP_CODE)
        if path != PACKAGE / "db" / "after_commit.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and any(isinstance(arg, ast.Constant) and arg.value in TRANSACTION_EVENTS for arg in node.args)
    ]
    assert found == []


CLOCK_READS = frozenset({"utcnow", "datetime.now", "datetime.utcnow", "time.time", "date.today", "epoch_ms"})
# Clock reads a service may make itself, each with its reason.
CLOCK_READS_ALLOWED = {
    # A JWT's issue time is stamped when it is signed: revocation epochs are compared with it to the
    # millisecond, and a token signed after a revocation's rewrite must not carry an earlier stamp.
    "layers/shared/replyflow/services/tokens.py": {"epoch_ms"},
}


def test_services_take_the_time_from_their_caller() -> None:
    """No service reads the clock itself (``utcnow()``, ``datetime.now()``, ``time.time()``): the route,
    handler or job passes ``now``, so a service's decisions are reproducible in a test."""
    found = [
        f"{_rel(path)}:{node.lineno}: {_dotted(node.func)}()"
        for path in _python_files(PACKAGE / "services")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and _dotted(node.func) in CLOCK_READS
        and _dotted(node.func) not in CLOCK_READS_ALLOWED.get(_rel(path), set())
    ]
    assert found == []


SOURCE_DIRS = ("layers/shared/replyflow", "functions", "local", "bench")


def _classes(dirs: tuple[str, ...]) -> list[tuple[str, list[str], str]]:
    found = []
    for folder in dirs:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    bases = [ast.unparse(base) for base in node.bases]
                    found.append((node.name, bases, str(path.relative_to(ROOT))))
    return found


def test_class_names_are_unique_across_the_tree() -> None:
    where: dict[str, list[str]] = {}
    for name, _bases, path in _classes(SOURCE_DIRS):
        where.setdefault(name, []).append(path)
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}


def test_every_error_of_the_product_is_a_replyflow_error() -> None:
    """Every exception class defined in the layer and the functions derives from ``ReplyflowError``
    (private control-flow signals such as ``_Stop`` aside). The local stack's emulators raise the
    errors of what they emulate (SQS, Instagram), so ``local/`` is not held to this."""
    classes = _classes(("layers/shared/replyflow", "functions"))
    bases_of = {name: [base.rsplit(".", 1)[-1] for base in bases] for name, bases, _path in classes}

    def reaches(name: str, target: str, seen: frozenset[str] = frozenset()) -> bool:
        if name == target:
            return True
        return any(
            reaches(base, target, seen | {name}) for base in bases_of.get(name, []) if base not in seen
        )

    def is_error(name: str) -> bool:
        builtin = {"Exception", "BaseException", "ValueError", "KeyError", "RuntimeError", "ConnectionError"}
        return any(reaches(name, base) for base in builtin if base != name)

    outside = [
        f"{path}:{name}"
        for name, _bases, path in classes
        if not name.startswith("_")
        and name != "ReplyflowError"
        and is_error(name)
        and not reaches(name, "ReplyflowError")
    ]
    assert outside == []
