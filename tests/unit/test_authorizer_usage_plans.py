"""API keys are metered by their tenant's tier usage plan: the authorizer names the tier's key."""

from __future__ import annotations

import pytest

from authorizer.handler import make_handler
from replyflow.services import tokens
from replyflow.services.api_key_auth import api_key_cache_key
from replyflow.settings import Settings
from replyflow.wiring.api import build_authorizer
from tests.support_pipeline import lambda_context

ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/v1/templates"
TIER_KEYS = {"free": "stack-tier-free-key-0000", "pro": "stack-tier-pro-key-00000"}


DEPS = build_authorizer(Settings(environment="test", usage_plan_keys=TIER_KEYS))
lambda_handler = make_handler(lambda: DEPS)


def _api_key(plan_code: str) -> str:
    key = tokens.new_api_key()
    entry = {
        "id": "k1",
        "tenant_id": "t1",
        "role": "member",
        "key_hash": tokens.sha256_hex(key.secret),
        "revoked": False,
        "plan_code": plan_code,
    }
    DEPS.cache.set_json(api_key_cache_key(key.prefix), entry, 60)
    return key.token


def _authorize(authorization: str) -> dict:
    return lambda_handler(
        {"type": "REQUEST", "methodArn": ARN, "headers": {"Authorization": authorization}}, lambda_context()
    )


def test_an_api_key_carries_its_tiers_usage_plan_key() -> None:
    assert _authorize(f"Bearer {_api_key('pro')}")["usageIdentifierKey"] == TIER_KEYS["pro"]


def test_a_plan_without_a_usage_plan_and_user_sessions_carry_none() -> None:
    assert "usageIdentifierKey" not in _authorize(f"Bearer {_api_key('business')}")
    jwt = tokens.issue_access_token(DEPS.key_ring, user_id="u1", tenant_id="t1", role="owner", ttl_seconds=60)
    assert "usageIdentifierKey" not in _authorize(f"Bearer {jwt}")


def test_usage_plan_keys_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USAGE_PLAN_KEYS", '{"free": "abc"}')
    assert Settings().usage_plan_keys == {"free": "abc"}
