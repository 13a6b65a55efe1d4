"""Revocation over HTTP on the local stack, whose gateway caches the authorizer's policy like API
Gateway: a revoked API key and a logged-out session are refused on their next request; every response
says nosniff, token responses no-store; the banner does not show the app secret."""

from __future__ import annotations

import secrets

import pytest

from tests.e2e.conftest import APP_SECRET

pytestmark = pytest.mark.e2e


def test_revocations_take_effect_on_the_next_request(local_stack) -> None:
    email = f"revoke-{secrets.token_hex(4)}@example.com"
    signup = local_stack.request(
        "POST",
        "/v1/auth/signup",
        json={"email": email, "password": "correct horse battery", "workspace_name": "Revoke"},
    )
    assert signup.status_code == 201, signup.text
    assert signup.headers["Cache-Control"] == "no-store"
    assert signup.headers["X-Content-Type-Options"] == "nosniff"
    owner = {"Authorization": f"Bearer {signup.json()['access_token']}"}
    created = local_stack.request("POST", "/v1/api-keys", headers=owner, json={"name": "ci"})
    assert created.status_code == 201, created.text
    key = {"Authorization": f"Bearer {created.json()['key']}"}
    assert local_stack.get("/v1/templates", headers=key).status_code == 200  # the policy is cached now

    assert (
        local_stack.request("DELETE", f"/v1/api-keys/{created.json()['id']}", headers=owner).status_code
        == 200
    )
    refused = local_stack.get("/v1/templates", headers=key)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "api_key_revoked"

    logout = local_stack.request(
        "POST", "/v1/auth/logout", json={"refresh_token": signup.json()["refresh_token"]}
    )
    assert logout.status_code == 204
    ended = local_stack.get("/v1/templates", headers=owner)
    assert ended.status_code == 401
    assert ended.json()["error"]["code"] == "session_ended"
    assert ended.headers["X-Content-Type-Options"] == "nosniff"
    assert (
        local_stack.get("/v1/templates").headers["X-Content-Type-Options"] == "nosniff"
    )  # the gateway's 401
    assert APP_SECRET not in local_stack.output()
