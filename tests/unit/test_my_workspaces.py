"""``GET /v1/me/workspaces``: the signed-in user's workspaces with their role, and the login into one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.test_api_support import ApiEnv, make_env


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def workspaces(env: ApiEnv, token: str) -> list[dict[str, Any]]:
    response = env.call("GET", "/v1/me/workspaces", token=token)
    assert response.status == 200, response.body
    return list(response.body)


def join(env: ApiEnv, owner_token: str, member: dict[str, Any], role: str) -> None:
    """``member`` (signed in) accepts an invitation into the owner's workspace."""
    invited = env.call(
        "POST", "/v1/members", token=owner_token, body={"email": member["email"], "role": role}
    )
    assert invited.status == 201, invited.body
    link = env.last_token(member["email"], "invitation")
    accepted = env.call("POST", "/v1/invitations/accept", token=member["access_token"], body={"token": link})
    assert accepted.status == 200, accepted.body


def test_lists_the_users_workspaces_with_role_oldest_first_and_never_another(api_env: ApiEnv) -> None:
    alice = api_env.signup("Alpha")
    beta = api_env.signup("Beta")
    gamma = api_env.signup("Gamma")
    join(api_env, beta["access_token"], alice, "admin")

    listed = workspaces(api_env, alice["access_token"])
    assert [(w["tenant"]["id"], w["role"], w["current"]) for w in listed] == [
        (alice["tenant_id"], "owner", True),
        (beta["tenant_id"], "admin", False),
    ]
    assert listed[1]["tenant"]["name"] == "Beta"
    assert gamma["tenant_id"] not in {w["tenant"]["id"] for w in listed}
    assert [w["tenant"]["id"] for w in workspaces(api_env, beta["access_token"])] == [beta["tenant_id"]]


def test_logging_in_with_a_listed_tenant_id_enters_it(api_env: ApiEnv) -> None:
    alice = api_env.signup("Alpha")
    beta = api_env.signup("Beta")
    join(api_env, beta["access_token"], alice, "member")
    target = workspaces(api_env, alice["access_token"])[1]["tenant"]["id"]
    login = api_env.call(
        "POST",
        "/v1/auth/login",
        body={"email": alice["email"], "password": alice["password"], "tenant_id": target},
    )
    assert login.status == 200, login.body
    assert (login.body["tenant_id"], login.body["role"]) == (beta["tenant_id"], "member")
    current = [w["tenant"]["id"] for w in workspaces(api_env, login.body["access_token"]) if w["current"]]
    assert current == [beta["tenant_id"]]


def test_a_removed_member_no_longer_lists_the_workspace(api_env: ApiEnv) -> None:
    alice = api_env.signup("Alpha")
    beta = api_env.signup("Beta")
    join(api_env, beta["access_token"], alice, "member")
    removed = api_env.call("DELETE", f"/v1/members/{alice['user_id']}", token=beta["access_token"])
    assert removed.status == 204, removed.body
    assert [w["tenant"]["id"] for w in workspaces(api_env, alice["access_token"])] == [alice["tenant_id"]]


def test_an_api_key_has_no_workspace_list(api_env: ApiEnv) -> None:
    owner = api_env.signup()
    created = api_env.call(
        "POST", "/v1/api-keys", token=owner["access_token"], body={"name": "ci", "role": "admin"}
    )
    answer = api_env.call("GET", "/v1/me/workspaces", token=created.body["key"])
    assert answer.status == 403
    assert answer.body["error"]["code"] == "user_required"


def test_without_a_token_it_is_401(api_env: ApiEnv) -> None:
    assert api_env.call("GET", "/v1/me/workspaces").status == 401
