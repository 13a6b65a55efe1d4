"""The API's and the authorizer's composition roots: built from arguments, read from the app context,
nothing heavy before it is used, and no string-keyed registry or second gateway left behind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.context import deps
from api.handler import make_handler
from replyflow.services.rate_limit_api import NoRateLimit
from replyflow.settings import Settings
from replyflow.wiring import core
from replyflow.wiring.api import MailerOnUse, OAuthOnUse, build_api, build_authorizer
from tests.support_pipeline import lambda_context
from tests.unit.test_api_support import ApiEnv, make_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def test_the_wiring_has_no_string_keyed_registry_and_no_api_invoke_helper() -> None:
    for name in ("override", "component", "clear_overrides", "reset_caches", "settings", "writer_sessions"):
        assert not hasattr(core, name), name
    assert not (ROOT / "functions" / "api" / "invoke.py").exists()


def test_the_defaults_are_lazy_and_every_argument_replaces_its_adapter() -> None:
    settings = Settings(environment="test")
    real = build_api(settings)
    assert isinstance(real.oauth_client, OAuthOnUse)
    assert isinstance(real.mailer, MailerOnUse)
    limiter = NoRateLimit(real.clients.redis)
    assert build_api(settings, clients=real.clients, limiter=limiter).limiter is limiter
    assert build_authorizer(settings, clients=real.clients).clients is real.clients


def test_each_request_reads_the_root_the_handler_was_given(api_env: ApiEnv) -> None:
    """Two roots over two databases: a handler answers from its own, whatever the other served."""
    owner = api_env.signup()
    assert api_env.call("GET", "/v1/templates", token=owner["access_token"]).status == 200
    other = build_api(Settings(environment="test", database_url="sqlite:///:memory:"))
    event = {
        "resource": "/health",
        "path": "/health",
        "httpMethod": "GET",
        "headers": {},
        "requestContext": {"stage": "v1", "identity": {"sourceIp": "10.0.0.1"}},
    }
    assert make_handler(lambda: other)(event, lambda_context("ApiFunction"))["statusCode"] == 200
    # The env's handler puts its own root back for the next request.
    assert api_env.call("GET", "/v1/templates", token=owner["access_token"]).status == 200


def test_a_route_without_a_root_in_the_context_is_an_internal_error_not_a_guess() -> None:
    from api.app import get_app

    app = get_app(Settings(environment="test"))
    app.clear_context()
    with pytest.raises(RuntimeError, match="ApiDeps"):
        deps(app)


@pytest.mark.parametrize("family", ["api", "authorizer"])
def test_building_a_root_imports_neither_httpx_nor_boto3(family: str) -> None:
    build = "build_api" if family == "api" else "build_authorizer"
    code = (
        "import sys; from replyflow.settings import Settings; "
        f"from replyflow.wiring.api import {build}; {build}(Settings(environment='test')); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('boto3', 'httpx')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env_path = f"{ROOT / 'layers' / 'shared'}:{ROOT / 'functions'}:{ROOT}"
    result = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": env_path}, capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
