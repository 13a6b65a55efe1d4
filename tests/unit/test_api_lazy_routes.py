"""The API includes its routers on demand (``api.app.ApiResolver``): a request brings in the routers
its path could match, so a cold start imports one route module. Matching must not change with the
order requests arrive in: each router's declared paths cover its routes, the routes keep the order of
``ROUTERS`` and a CORS preflight allows every method of the API whatever is included yet."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_lambda_powertools.event_handler.api_gateway import Router

from api import app as api_app

ROOT = Path(__file__).resolve().parents[2]
# One path under each router, and some that match none.
PATHS = [
    "/v1/data-deletion/abc",
    "/v1/flows/f1/versions",
    "/v1/contacts",
    "/v1/me",
    "/v1/automations/a1/test",
    "/health",
    "/v1/auth/login",
    "/v1/nothing-here",
    "/elsewhere",
    "/v1/accounts/a1",
    "/v1/billing",
]


@pytest.fixture(autouse=True)
def _fresh_process_resolver() -> Iterator[None]:
    """A new resolver takes the module-level routers over: the process's own is rebuilt after."""
    yield
    api_app._build_app.cache_clear()


def _router(module: str, attribute: str) -> Router:
    router: Router = getattr(importlib.import_module(f"api.routes.{module}"), attribute)
    return router


def _routes(resolver: api_app.ApiResolver) -> list[tuple[str, str]]:
    return [(r.method, r.rule.pattern) for r in resolver._static_routes + resolver._dynamic_routes]


def test_each_router_declares_the_paths_its_routes_start_with() -> None:
    for module, attribute, prefix, paths in api_app.ROUTERS:
        for rule, *_rest in _router(module, attribute)._routes:
            full = prefix if prefix and rule == "/" else f"{prefix or ''}{rule}"
            assert full.split("<", 1)[0].startswith(paths), (module, attribute, full, paths)


def test_the_preflight_methods_are_every_method_of_the_api() -> None:
    methods = {"OPTIONS"}
    for module, attribute, _prefix, _paths in api_app.ROUTERS:
        for _rule, method, *_rest in _router(module, attribute)._routes:
            methods |= {m.upper() for m in ((method,) if isinstance(method, str) else method)}
    assert methods == set(api_app.CORS_METHODS)
    resolver = api_app.new_resolver(("*",), False).include_for("/v1/me")
    assert resolver._cors_methods == set(api_app.CORS_METHODS)


def test_routes_keep_one_order_whatever_order_the_paths_arrive_in() -> None:
    everything = _routes(api_app.new_resolver(("*",), False).include_all())
    for paths in (PATHS, list(reversed(PATHS))):
        resolver = api_app.new_resolver(("*",), False)
        for path in paths:
            resolver.include_for(path)
        resolver.include_all()
        assert _routes(resolver) == everything


def test_a_path_includes_only_the_routers_it_could_match() -> None:
    code = (
        "import sys; from api.app import new_resolver; "
        "new_resolver(('*',), False).include_for('/v1/automations'); "
        "print(sorted(m for m in sys.modules if m.startswith('api.routes.')))"
    )
    env_path = f"{ROOT / 'layers' / 'shared'}:{ROOT / 'functions'}:{ROOT}"
    result = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": env_path}, capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['api.routes.automations']"
