"""Auth through the in-process gateway (authorizer + API) on SQLite and fakeredis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from replyflow.db.repositories import users
from tests.unit.test_api_support import ApiEnv, make_env


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def test_signup_login_me(api_env: ApiEnv) -> None:
    account = api_env.signup("Acme")
    assert account["role"] == "owner"
    login = api_env.call(
        "POST", "/v1/auth/login", body={"email": account["email"], "password": account["password"]}
    )
    assert login.status == 200
    me = api_env.call("GET", "/v1/me", token=login.body["access_token"])
    assert me.status == 200
    assert me.body["tenant"]["plan_code"] == "free"
    assert me.body["user"]["email"] == account["email"]
    current = api_env.call("GET", "/v1/subscriptions/current", token=login.body["access_token"])
    assert current.body["plan_code"] == "free"


def test_duplicate_signup_is_a_conflict_with_the_error_shape(api_env: ApiEnv) -> None:
    account = api_env.signup()
    again = api_env.call(
        "POST",
        "/v1/auth/signup",
        body={"email": account["email"].upper(), "password": "another password", "workspace_name": "x"},
    )
    assert again.status == 409
    assert again.body["error"]["code"] == "email_taken"
    assert set(again.body["error"]) == {"code", "message", "details"}


def test_a_signup_racing_another_for_the_email_is_a_conflict_not_a_500(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "email free?" read saw nothing, then the other signup committed: the unique index decides."""
    account = api_env.signup()
    monkeypatch.setattr(users, "by_email", lambda session, email: None)  # the read that lost the race
    again = api_env.call(
        "POST",
        "/v1/auth/signup",
        body={"email": account["email"], "password": "another password", "workspace_name": "x"},
    )
    assert again.status == 409
    assert again.body["error"]["code"] == "email_taken"


def test_validation_errors_name_the_field(api_env: ApiEnv) -> None:
    response = api_env.call("POST", "/v1/auth/signup", body={"email": "nope", "password": "short"})
    assert response.status == 422
    locations = {tuple(d["loc"]) for d in response.body["error"]["details"]}
    assert ("body", "email") in locations
    assert ("body", "password") in locations
    assert ("body", "workspace_name") in locations


def test_wrong_password_is_401_and_brute_force_is_429_even_with_the_right_password(api_env: ApiEnv) -> None:
    account = api_env.signup()
    wrong = {"email": account["email"], "password": "wrong password!"}
    statuses = [api_env.call("POST", "/v1/auth/login", body=wrong).status for _ in range(10)]
    assert statuses == [401] * 10
    right = api_env.call(
        "POST", "/v1/auth/login", body={"email": account["email"], "password": account["password"]}
    )
    assert right.status == 429
    assert int(right.headers["Retry-After"]) > 0
    assert right.body["error"]["code"] == "rate_limited"


def test_unknown_email_is_the_same_401(api_env: ApiEnv) -> None:
    response = api_env.call(
        "POST", "/v1/auth/login", body={"email": "ghost@example.com", "password": "whatever1"}
    )
    assert response.status == 401
    assert response.body["error"]["code"] == "invalid_credentials"


def test_refresh_rotates_and_reuse_revokes_the_family(api_env: ApiEnv) -> None:
    account = api_env.signup()
    first = account["refresh_token"]
    rotated = api_env.call("POST", "/v1/auth/refresh", body={"refresh_token": first})
    assert rotated.status == 200
    second = rotated.body["refresh_token"]
    assert second != first
    reused = api_env.call("POST", "/v1/auth/refresh", body={"refresh_token": first})
    assert reused.status == 401
    assert reused.body["error"]["code"] == "refresh_token_reused"
    # The whole family is gone, including the token the thief (or the user) got last.
    assert api_env.call("POST", "/v1/auth/refresh", body={"refresh_token": second}).status == 401


def test_logout_revokes_the_refresh_token(api_env: ApiEnv) -> None:
    account = api_env.signup()
    assert (
        api_env.call("POST", "/v1/auth/logout", body={"refresh_token": account["refresh_token"]}).status
        == 204
    )
    response = api_env.call("POST", "/v1/auth/refresh", body={"refresh_token": account["refresh_token"]})
    assert response.status == 401


def test_authenticated_routes_need_the_authorizer(api_env: ApiEnv) -> None:
    assert api_env.call("GET", "/v1/me").status == 401
    assert api_env.call("GET", "/v1/templates", token="garbage").status == 401
    assert api_env.call("GET", "/v1/plans").status == 200
    assert api_env.call("GET", "/health").status == 200


def test_api_key_is_shown_once_authenticates_and_stops_working_when_revoked(api_env: ApiEnv) -> None:
    owner = api_env.signup()["access_token"]
    created = api_env.call("POST", "/v1/api-keys", token=owner, body={"name": "ci", "role": "member"})
    assert created.status == 201
    key = created.body["key"]
    listed = api_env.call("GET", "/v1/api-keys", token=owner)
    assert "key" not in listed.body[0]
    assert "key_hash" not in listed.body[0]
    me = api_env.call("GET", "/v1/me", token=key)
    assert me.status == 200
    assert me.body["principal_type"] == "api_key"
    assert me.body["role"] == "member"
    # A member key reads but cannot write, and cannot manage keys.
    assert api_env.call("POST", "/v1/templates", token=key, body={"name": "t", "text": "hi"}).status == 403
    assert api_env.call("GET", "/v1/api-keys", token=key).status == 403
    assert api_env.call("DELETE", f"/v1/api-keys/{created.body['id']}", token=owner).status == 200
    assert api_env.call("GET", "/v1/me", token=key).status == 401
    wrong_secret = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    assert api_env.call("GET", "/v1/me", token=wrong_secret).status == 401


def test_members_roles_and_the_last_owner(api_env: ApiEnv) -> None:
    owner = api_env.signup()
    token = owner["access_token"]
    member = api_env.invite_and_accept(token, "m@example.com", "member")
    member_token = member["access_token"]
    assert api_env.call("GET", "/v1/templates", token=member_token).status == 200
    denied = api_env.call("POST", "/v1/templates", token=member_token, body={"name": "t", "text": "hi"})
    assert denied.status == 403
    assert denied.body["error"]["code"] == "insufficient_role"
    last_owner = api_env.call("DELETE", f"/v1/members/{owner['user_id']}", token=token)
    assert last_owner.status == 409
    assert (
        api_env.call("PATCH", f"/v1/members/{member['user_id']}", token=token, body={"role": "admin"}).status
        == 200
    )
    assert api_env.call("DELETE", f"/v1/members/{member['user_id']}", token=token).status == 204
    assert (
        api_env.call("POST", "/v1/auth/refresh", body={"refresh_token": member["refresh_token"]}).status
        == 401
    )


def test_tenant_rate_limit_headers_and_429(api_env: ApiEnv) -> None:
    """The plan's per-minute allowance, for the workspace's API keys (users: the console's)."""
    owner = api_env.signup()["access_token"]
    created = api_env.call("POST", "/v1/api-keys", token=owner, body={"name": "ci", "role": "admin"})
    token = created.body["key"]
    first = api_env.call("GET", "/v1/templates", token=token)
    assert first.headers["X-RateLimit-Allowance"] == "plan"
    assert first.headers["X-RateLimit-Limit"] == "60"
    assert int(first.headers["X-RateLimit-Remaining"]) == 59
    invalid = api_env.call("POST", "/v1/templates", token=token, body={"name": ""})
    assert invalid.status == 422
    assert invalid.headers["X-RateLimit-Remaining"] == "58", "a request that fails validation still counts"
    statuses = [api_env.call("GET", "/v1/templates", token=token).status for _ in range(59)]
    assert statuses.count(429) == 1
    limited = api_env.call("GET", "/v1/templates", token=token)
    assert limited.status == 429
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Allowance"] == "plan"
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.body["error"]["details"]["allowance"] == "plan"
    assert "the plan allows 60 API requests per minute" in limited.body["error"]["message"]
    assert api_env.call("GET", "/v1/templates", token=owner).status == 200  # the console is not refused
