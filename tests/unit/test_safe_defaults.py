"""Safe defaults: weak secrets refused outside local/test, security headers on every API response, a
banner without secrets, and per-tenant caps (409 with a code naming the cap)."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from local.stack import LocalStack, StackOptions
from local.template import load_template
from replyflow.services import limits
from replyflow.settings import Settings
from tests.unit.test_api_support import ApiEnv, make_env


def strong() -> dict[str, Any]:
    return {
        "environment": "prod",
        "instagram_app_secret": secrets.token_hex(16),
        "instagram_verify_token": secrets.token_urlsafe(24),
        "token_encryption_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "jwt_signing_keys": json.dumps({"k1": secrets.token_urlsafe(48)}),
        "jwt_active_kid": "k1",
        "stripe_secret_key": "sk_live_" + secrets.token_hex(16),
        "stripe_webhook_secret": "whsec_" + secrets.token_hex(16),
    }


def test_strong_secrets_are_accepted_in_prod() -> None:
    settings = Settings(**strong(), cors_allow_origins="https://app.example.com", cors_allow_credentials=True)
    assert settings.cors_allow_credentials is True


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("instagram_app_secret", "", "INSTAGRAM_APP_SECRET is empty"),
        ("instagram_app_secret", "short", "INSTAGRAM_APP_SECRET is shorter"),
        ("instagram_app_secret", "a" * 40, "INSTAGRAM_APP_SECRET is too predictable"),
        ("instagram_verify_token", "changeme-" * 4, "INSTAGRAM_VERIFY_TOKEN is too predictable"),
        ("meta_app_secret", "passwordpassword", "META_APP_SECRET"),
        ("jwt_signing_keys", json.dumps({"k1": "x" * 48}), r"JWT_SIGNING_KEYS\[k1\] is too predictable"),
        ("token_encryption_key", base64.urlsafe_b64encode(bytes(32)).decode(), "all zeros"),
        ("token_encryption_key", base64.urlsafe_b64encode(b"ab" * 16).decode(), "not random"),
        ("token_encryption_key", base64.urlsafe_b64encode(b"k" * 16).decode(), "32 bytes"),
    ],
)
def test_prod_refuses_weak_or_empty_secrets_and_never_echoes_them(
    field: str, value: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as error:
        Settings(**{**strong(), field: value})
    if len(value) >= 8:
        assert value not in str(error.value)


def test_prod_refuses_credentialed_cors_for_every_origin() -> None:
    with pytest.raises(ValidationError, match="CORS_ALLOW_ORIGINS"):
        Settings(**strong(), cors_allow_credentials=True)
    Settings(**strong())  # "*" without credentials: Bearer tokens are not ambient, nothing to steal


def test_local_and_test_keep_their_development_defaults() -> None:
    for environment in ("local", "test"):
        Settings(environment=environment, instagram_app_secret="", cors_allow_credentials=True)


def test_the_banner_never_prints_the_app_secret_or_verify_token() -> None:
    app_secret, verify_token = secrets.token_hex(16), secrets.token_urlsafe(16)
    settings = Settings(
        environment="local", instagram_app_secret=app_secret, instagram_verify_token=verify_token
    )
    options = StackOptions()
    stack = LocalStack(settings, options, template=load_template(options.template_path), settings=settings)
    banner = stack.banner()
    assert "App secret" in banner
    assert app_secret not in banner
    assert verify_token not in banner


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def test_every_api_response_says_nosniff_and_token_responses_say_no_store(api_env: ApiEnv) -> None:
    account = api_env.signup()
    owner = account["access_token"]
    signup = api_env.call(
        "POST",
        "/v1/auth/signup",
        body={"email": "h@example.com", "password": "correct horse battery", "workspace_name": "H"},
    )
    login = api_env.call(
        "POST", "/v1/auth/login", body={"email": account["email"], "password": account["password"]}
    )
    refresh = api_env.call("POST", "/v1/auth/refresh", body={"refresh_token": login.body["refresh_token"]})
    key = api_env.call("POST", "/v1/api-keys", token=owner, body={"name": "ci"})
    invite = api_env.call("POST", "/v1/members", token=owner, body={"email": "i@example.com"})
    for response in (signup, login, refresh, key, invite):
        assert response.status in (200, 201), response.body
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    others = [
        api_env.call("GET", "/health"),
        api_env.call("GET", "/v1/templates", token=owner),
        api_env.call("GET", "/v1/nope", token=owner),
        api_env.call("POST", "/v1/templates", token=owner, body={"bad": 1}),
        api_env.call("POST", "/v1/auth/login", body={"email": account["email"], "password": "wrong"}),
        api_env.call("GET", "/openapi.json"),
    ]
    for response in others:
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.status
    assert "Cache-Control" not in others[1].headers  # an ordinary read stays cacheable by the client


def test_api_keys_are_capped_per_tenant_and_revoking_one_frees_a_slot(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_ACTIVE_API_KEYS", 3)
    owner = api_env.signup()["access_token"]
    created = [api_env.call("POST", "/v1/api-keys", token=owner, body={"name": f"k{i}"}) for i in range(3)]
    assert [c.status for c in created] == [201, 201, 201]
    over = api_env.call("POST", "/v1/api-keys", token=owner, body={"name": "k3"})
    assert over.status == 409
    assert over.body["error"]["code"] == "api_key_limit_reached"
    assert over.body["error"]["details"] == {"allowed": 3, "current": 3}
    assert api_env.call("DELETE", f"/v1/api-keys/{created[0].body['id']}", token=owner).status == 200
    assert api_env.call("POST", "/v1/api-keys", token=owner, body={"name": "k3"}).status == 201
    # Another tenant has its own budget.
    other = api_env.signup("Other")["access_token"]
    assert api_env.call("POST", "/v1/api-keys", token=other, body={"name": "k0"}).status == 201


def test_templates_are_capped_per_tenant(api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_TEMPLATES", 2)
    owner = api_env.signup()["access_token"]
    body = {"name": "t", "text": "hi"}
    assert [api_env.call("POST", "/v1/templates", token=owner, body=body).status for _ in range(2)] == [
        201,
        201,
    ]
    over = api_env.call("POST", "/v1/templates", token=owner, body=body)
    assert over.status == 409
    assert over.body["error"]["code"] == "template_limit_reached"


def test_members_are_capped_by_plan(api_env: ApiEnv) -> None:
    owner = api_env.signup()["access_token"]
    allowed = limits.members_allowed("free")
    for i in range(allowed - 1):  # the owner is the first member
        invited = api_env.call("POST", "/v1/members", token=owner, body={"email": f"m{i}@example.com"})
        assert invited.status == 201, invited.body
    # Pending invitations hold their seats: one more invite is refused before anyone accepts.
    over = api_env.call("POST", "/v1/members", token=owner, body={"email": "one-too-many@example.com"})
    assert over.status == 409
    assert over.body["error"]["code"] == "member_limit_reached"
    assert over.body["error"]["details"] == {"allowed": allowed, "current": allowed}
    assert limits.members_allowed("business") > limits.members_allowed("pro") > allowed


def test_a_downgrade_below_the_member_count_is_refused(api_env: ApiEnv) -> None:
    owner = api_env.signup()["access_token"]
    upgrade = api_env.call("POST", "/v1/subscriptions", token=owner, body={"plan_code": "pro"})
    assert upgrade.status in (200, 201), upgrade.body
    for i in range(limits.members_allowed("free")):
        api_env.invite_and_accept(owner, f"d{i}@example.com")
    downgrade = api_env.call("POST", "/v1/subscriptions", token=owner, body={"plan_code": "free"})
    assert downgrade.status == 409
    assert downgrade.body["error"]["code"] == "over_plan_limits"
    assert {"limit": "max_members", "allowed": 5, "current": 6} in downgrade.body["error"]["details"]
