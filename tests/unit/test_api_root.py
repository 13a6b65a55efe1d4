"""The API's and the authorizer's composition roots: built from arguments, read from the app context,
nothing heavy before it is used, and no string-keyed registry or second gateway left behind."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from api.context import deps
from api.handler import make_handler
from replyflow.adapters.api_rate_limiter import NoRateLimit
from replyflow.adapters.secrets import AppSecrets, SecretValues, values_from_settings
from replyflow.redacted import Secret
from replyflow.settings import Settings
from replyflow.wiring import core
from replyflow.wiring.api import MailerOnUse, OAuthOnUse, build_api, build_authorizer
from replyflow.wiring.core import Clients
from tests.support_pipeline import FixedClock, lambda_context
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


class _Versions:
    """A secrets loader whose current values a test changes, counting reads."""

    def __init__(self, values: SecretValues) -> None:
        self.values = values

    def __call__(self, _force: bool) -> SecretValues:
        return self.values


def test_configs_are_built_once_per_secrets_version() -> None:
    settings = Settings(environment="test")
    first = values_from_settings(settings)
    versions = _Versions(first)
    clock = [0.0]
    secrets = AppSecrets(versions, max_age=300, min_refresh_seconds=0, monotonic=lambda: clock[0])
    api = build_api(settings, clients=Clients(settings, app_secrets=secrets))
    auth, oauth, ring = api.auth_config, api.oauth_config, api.key_ring
    assert api.auth_config is auth
    assert api.oauth_config is oauth
    assert api.key_ring is ring
    assert auth.keys is ring
    assert oauth.keys is ring
    assert (
        api.oauth.config("http://127.0.0.1:3000").keys is ring
    )  # the service objects read the cached configs
    # A max_age re-read that brings equal values keeps every config.
    clock[0] += 301
    loads = secrets.loads
    assert api.auth_config is auth
    assert api.oauth_config is oauth
    assert api.key_ring is ring
    assert secrets.loads == loads + 1
    # A rotation, seen by a forced refresh: every config is rebuilt once, on the new values.
    versions.values = replace(first, instagram_app_secret=Secret("rotated-secret"))
    assert secrets.refresh() is not None
    rotated = api.oauth_config
    assert rotated is not oauth
    assert rotated.app_secret == "rotated-secret"
    assert api.auth_config is not auth
    assert api.key_ring is not ring
    assert api.oauth_config is rotated
    assert api.auth_config.keys is api.key_ring


def test_the_authorizer_key_ring_is_rebuilt_only_when_the_secrets_change() -> None:
    settings = Settings(environment="test")
    first = values_from_settings(settings)
    versions = _Versions(first)
    secrets = AppSecrets(versions, min_refresh_seconds=0)
    authorizer = build_authorizer(settings, clients=Clients(settings, app_secrets=secrets))
    ring = authorizer.key_ring
    assert authorizer.key_ring is ring
    assert secrets.refresh() is None  # the same values again: nothing to rebuild
    assert authorizer.key_ring is ring
    keys = {**first.jwt_signing_keys, "k9": "another-signing-key-of-enough-length-000000"}
    versions.values = replace(first, jwt_signing_keys=keys, jwt_active_kid="k9")
    assert secrets.refresh() is not None
    assert authorizer.key_ring is not ring
    assert authorizer.key_ring.active_kid == "k9"


def test_the_routes_take_the_time_from_the_roots_clock(api_env: ApiEnv) -> None:
    owner = api_env.signup()
    then = datetime(2031, 5, 4, 12, 0, 0)
    api_env.use(clock=FixedClock(then))
    invited = api_env.call(
        "POST", "/v1/members", token=owner["access_token"], body={"email": "x@example.com", "role": "member"}
    )
    assert invited.status == 201, invited.body
    assert invited.body["sent_at"] == "2031-05-04T12:00:00Z"
    assert invited.body["expires_at"] == "2031-05-11T12:00:00Z"


ROUTES = ROOT / "functions" / "api" / "routes"
# What only a service object does: open a unit of work, read the clock, reach a port of the root.
ROUTE_FORBIDDEN = frozenset(
    {"unit_of_work", "read_only", "writer_sessions", "cache", "limiter", "cipher", "mailer", "revoker"}
)


@pytest.mark.parametrize("module", sorted(p.name for p in ROUTES.glob("*.py") if p.name != "__init__.py"))
def test_a_route_calls_a_service_object_with_request_facts_only(module: str) -> None:
    """The pattern of ``wiring/api.py``: a route opens no session, reads no clock, names no port, and
    calls no service function itself (``from replyflow.services import x`` is the old style)."""
    tree = ast.parse((ROUTES / module).read_text())
    found = [
        f"{module}:{getattr(node, 'lineno', 0)}: {what}"
        for node in ast.walk(tree)
        for what in _route_violations(node)
    ]
    assert found == []


def _route_violations(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Attribute) and node.attr in ROUTE_FORBIDDEN:
        return [f".{node.attr}"]
    if isinstance(node, ast.Name) and node.id in {"utcnow", "epoch_ms"}:
        return [node.id]
    if isinstance(node, ast.ImportFrom) and node.module == "replyflow.services":
        return [f"from replyflow.services import {', '.join(a.name for a in node.names)}"]
    return []


def test_a_lambda_instance_builds_its_settings_at_their_first_read(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from replyflow.settings import get_settings
    from replyflow.settings_view import ApiSettings
    from replyflow.wiring.api import lambda_api

    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "https://console.example")
    monkeypatch.setenv("ACCESS_TOKEN_TTL_SECONDS", "120")
    get_settings.cache_clear()
    try:
        root = lambda_api()
        assert root.view == ApiSettings.from_environ()
        assert root.revoker.access_ttl_seconds == 120
        assert "settings" not in vars(root.clients)  # not built by the root, its Redis or its revoker
        root.cache.get_json("rf-test:nothing")
        assert "settings" not in vars(root.clients)
        assert root.settings == Settings()  # then read the way ``Settings`` reads them
        assert root.settings is get_settings()
    finally:
        get_settings.cache_clear()


def test_a_deployed_stack_with_its_secrets_in_the_environment_is_vetted_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from replyflow.settings import get_settings
    from replyflow.wiring.api import lambda_api

    monkeypatch.setenv("ENVIRONMENT", "prod")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="must be set outside the local stack"):
            lambda_api()
    finally:
        get_settings.cache_clear()
