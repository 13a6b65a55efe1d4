"""What ``make build`` leaves in ``.aws-sam/build`` for ``sam deploy`` to zip: bytecode for every
module of the layer and the functions, compiled for the functions' runtime, so a new Lambda instance
(a read-only file system) never compiles a module before it answers (docs/deploy.md#tooling).

CI runs ``make build`` before the tests, so there the build must exist; elsewhere these tests run
only when a build is present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.infra.conftest import ROOT, TEMPLATE

BUILD = ROOT / ".aws-sam" / "build"
# PEP 552: the flags word of a .pyc header; 0b01 hash-based, 0b10 the source checked against it.
HASH_BASED = 0b01
CHECK_SOURCE = 0b10


def _built() -> Path:
    if not BUILD.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(".aws-sam/build is missing: CI runs `make build` before the tests")
        pytest.skip("no .aws-sam/build here (run `make build`)")
    return BUILD


def _runtime_tag() -> str:
    """``cpython-311`` for the template's ``Runtime: python3.11``."""
    for line in TEMPLATE.read_text().splitlines():
        if line.strip().startswith("Runtime: python"):
            version = line.split("python", 1)[1].strip()
            return "cpython-" + version.replace(".", "")
    raise AssertionError("template.yaml names no python runtime")


def _our_sources(build: Path) -> list[Path]:
    """Our modules in the build: the layer's package and every function's handler code."""
    layer = sorted((build / "SharedLayer" / "python" / "replyflow").rglob("*.py"))
    functions = sorted(p for p in build.glob("*Function/**/*.py"))
    return layer + functions


def test_every_module_of_ours_ships_its_bytecode_for_the_runtime() -> None:
    build = _built()
    tag = _runtime_tag()
    sources = _our_sources(build)
    assert len(sources) > 50, sources  # the layer and the handlers are there
    missing = [
        str(source.relative_to(build))
        for source in sources
        if not (source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc").is_file()
    ]
    assert not missing, f"no {tag} bytecode (rebuild with `make build`): {missing[:10]}"


def test_the_bytecode_does_not_depend_on_the_zips_file_times() -> None:
    build = _built()
    tag = _runtime_tag()
    for pyc in [
        *build.glob(f"SharedLayer/python/replyflow/**/*.{tag}.pyc"),
        *build.glob(f"*Function/**/*.{tag}.pyc"),
    ]:
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags & HASH_BASED, pyc
        assert not flags & CHECK_SOURCE, pyc


def test_the_dependencies_ship_their_bytecode_too() -> None:
    """SQLAlchemy, pydantic and Powertools are most of what an instance imports."""
    build = _built()
    tag = _runtime_tag()
    for package in ("sqlalchemy", "pydantic", "aws_lambda_powertools", "redis"):
        init = build / "SharedLayer" / "python" / package / "__pycache__" / f"__init__.{tag}.pyc"
        assert init.is_file(), init
