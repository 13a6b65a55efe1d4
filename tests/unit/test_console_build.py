"""The console is typed against the API's own OpenAPI document: the committed ``console/openapi.json``
must be what the API serves today (``make console-openapi`` regenerates it and the client types), and
``make run`` rebuilds ``console/dist`` only when a source is newer than the build."""

from __future__ import annotations

import json
import os
from pathlib import Path

import api.app  # noqa: F401  (imported at collection: the X-Ray recorder opens its UDP socket once)
from local import console_build


def test_the_committed_openapi_document_is_the_apis() -> None:
    committed = console_build.OPENAPI_PATH.read_text()
    assert committed == console_build.openapi_document(), (
        "console/openapi.json is stale: run `make console-openapi` and fix the console's type errors"
    )


def test_the_document_names_the_routes_the_console_calls() -> None:
    paths = json.loads(console_build.OPENAPI_PATH.read_text())["paths"]
    called = {
        "/v1/auth/signup",
        "/v1/auth/login",
        "/v1/me",
        "/v1/accounts/oauth/start",
        "/v1/accounts/oauth/complete",
        "/v1/templates/preview",
        "/v1/automations/{automation_id}/test",
        "/v1/logs/automations",
        "/v1/logs/replies",
        "/v1/stats",
        "/v1/subscriptions/current",
    }
    assert called <= set(paths)


def _console(tmp_path: Path) -> Path:
    root = tmp_path / "console"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.tsx").write_text("export {};\n")
    (root / "package.json").write_text("{}\n")
    return root


def test_dist_is_stale_when_missing_or_older_than_a_source(tmp_path: Path) -> None:
    root = _console(tmp_path)
    assert console_build.dist_is_stale(root)
    (root / "dist").mkdir()
    index = root / "dist" / "index.html"
    index.write_text("<!doctype html>")
    source = root / "src" / "main.tsx"
    os.utime(source, (1_000, 1_000))
    os.utime(root / "package.json", (1_000, 1_000))
    os.utime(index, (2_000, 2_000))
    assert not console_build.dist_is_stale(root)
    os.utime(source, (3_000, 3_000))
    assert console_build.dist_is_stale(root)
