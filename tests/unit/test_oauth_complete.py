"""OAuth account linking through the in-process gateway (SQLite, in-process fakeredis): the state of
``/oauth/start`` completes only for the user who started it, once; the unauthenticated callback shows
the code and state and connects nothing."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from replyflow.services import tokens
from tests.unit.test_api_support import ApiEnv, make_env


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def start_state(env: ApiEnv, token: str) -> str:
    response = env.call("GET", "/v1/accounts/oauth/start", token=token)
    assert response.status == 200, response.body
    query = parse_qs(urlsplit(response.body["authorize_url"]).query)
    assert query["redirect_uri"] == [env.settings.oauth_redirect_uri]
    return query["state"][0]


def complete(env: ApiEnv, token: str, state: str, code: str = "AQcode") -> Any:
    return env.call("POST", "/v1/accounts/oauth/complete", token=token, body={"code": code, "state": state})


def account_count(env: ApiEnv, token: str) -> int:
    response = env.call("GET", "/v1/accounts", token=token)
    assert response.status == 200, response.body
    return len(response.body)


def invite_and_login(env: ApiEnv, owner_token: str, role: str) -> str:
    email = f"{role}-{secrets.token_hex(4)}@example.com"
    return str(env.invite_and_accept(owner_token, email, role)["access_token"])


def test_complete_connects_the_account_for_the_user_who_started(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    state = start_state(api_env, token)
    response = complete(api_env, token, state)
    assert response.status == 201, response.body
    assert response.body["status"] == "active"
    assert response.body["ig_user_id"] == api_env.oauth.ig_user_id
    assert "access_token" not in str(response.body).lower()
    assert api_env.oauth.calls[:3] == ["exchange_code", "long_lived", "profile"]
    assert api_env.oauth.subscribed, "webhooks were not subscribed"
    assert account_count(api_env, token) == 1


def test_a_state_of_tenant_a_completed_by_tenant_b_is_403_and_connects_nothing(api_env: ApiEnv) -> None:
    attacker = api_env.signup("Attacker")["access_token"]
    victim = api_env.signup("Victim")["access_token"]
    attackers_state = start_state(api_env, attacker)
    response = complete(api_env, victim, attackers_state)
    assert response.status == 403, response.body
    assert response.body["error"]["code"] == "oauth_state_mismatch"
    assert "exchange_code" not in api_env.oauth.calls, "the code was exchanged for a refused state"
    assert account_count(api_env, victim) == 0
    assert account_count(api_env, attacker) == 0
    # The refusal did not spend the state: its owner can still finish.
    assert complete(api_env, attacker, attackers_state).status == 201


def test_a_state_of_another_user_of_the_same_tenant_is_403(api_env: ApiEnv) -> None:
    owner = api_env.signup()["access_token"]
    admin = invite_and_login(api_env, owner, "admin")
    response = complete(api_env, admin, start_state(api_env, owner))
    assert response.status == 403, response.body
    assert response.body["error"]["code"] == "oauth_state_mismatch"
    assert account_count(api_env, owner) == 0


def test_a_member_cannot_complete(api_env: ApiEnv) -> None:
    owner = api_env.signup()["access_token"]
    member = invite_and_login(api_env, owner, "member")
    assert api_env.call("GET", "/v1/accounts/oauth/start", token=member).status == 403
    response = complete(api_env, member, start_state(api_env, owner))
    assert response.status == 403
    assert response.body["error"]["code"] == "insufficient_role"


def test_complete_needs_a_bearer_token(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    state = start_state(api_env, token)
    response = api_env.call("POST", "/v1/accounts/oauth/complete", body={"code": "c", "state": state})
    assert response.status == 401
    assert account_count(api_env, token) == 0


def test_a_used_state_is_409(api_env: ApiEnv) -> None:
    signup = api_env.signup()
    token = signup["access_token"]
    state = start_state(api_env, token)
    assert complete(api_env, token, state).status == 201
    exchanges = api_env.oauth.calls.count("exchange_code")
    replay = complete(api_env, token, state, code="AQother")
    assert replay.status == 409, replay.body
    assert replay.body["error"]["code"] == "oauth_state_used"
    assert api_env.oauth.calls.count("exchange_code") == exchanges
    # The spent nonce lives in Redis no longer than the state could verify.
    nonce = tokens.read_oauth_state(api_env.deps.key_ring, state).nonce
    ttl = api_env.deps.clients.redis.ttl(f"rf:oauth-state:{signup['tenant_id']}:{nonce}")
    assert 0 < ttl <= tokens.OAUTH_STATE_TTL_SECONDS


def test_a_state_is_spent_even_when_the_connection_then_fails(api_env: ApiEnv) -> None:
    owner = api_env.signup()["access_token"]
    api_env.oauth.ig_user_id = "17841400000000001"
    assert complete(api_env, owner, start_state(api_env, owner)).status == 201
    other = api_env.signup("Other")["access_token"]
    state = start_state(api_env, other)
    taken = complete(api_env, other, state)
    assert taken.status == 409
    assert taken.body["error"]["code"] == "account_connected_elsewhere"
    assert complete(api_env, other, state).body["error"]["code"] == "oauth_state_used"


def test_expired_tampered_and_foreign_states_are_422(api_env: ApiEnv) -> None:
    signup = api_env.signup()
    token = signup["access_token"]
    ring = api_env.deps.key_ring
    state = start_state(api_env, token)
    header, payload, signature = state.split(".")
    expired = ring.encode(
        {"sub": signup["user_id"], "tid": signup["tenant_id"], "typ": "oauth_state", "nonce": "n" * 24},
        ttl_seconds=-5,
        audience=tokens.oauth_state_audience(ring),
    )
    no_nonce = ring.encode(
        {"sub": signup["user_id"], "tid": signup["tenant_id"], "typ": "oauth_state"},
        ttl_seconds=300,
        audience=tokens.oauth_state_audience(ring),
    )
    for name, bad in {
        "expired": expired,
        "tampered": f"{header}.{payload[:-2]}{'AA' if not payload.endswith('AA') else 'BB'}.{signature}",
        "access_token": token,
        "no_nonce": no_nonce,
        "garbage": "not-a-state",
    }.items():
        response = complete(api_env, token, bad)
        assert response.status == 422, (name, response.body)
        assert response.body["error"]["code"] == "oauth_invalid_state", name
    assert "exchange_code" not in api_env.oauth.calls
    assert account_count(api_env, token) == 0
    assert complete(api_env, token, state).status == 201


def test_callback_shows_the_code_and_state_and_connects_nothing(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    state = start_state(api_env, token)
    before = account_count(api_env, token)
    page = api_env.call("GET", "/v1/accounts/oauth/callback", query={"code": "AQcode123#_", "state": state})
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "AQcode123" in page.body
    assert "#_" not in page.body
    assert state in page.body
    assert "POST" in page.body
    assert "http://127.0.0.1:3000/v1/accounts/oauth/complete" in page.body
    assert account_count(api_env, token) == before == 0
    assert "exchange_code" not in api_env.oauth.calls
    # The state is still good for its owner.
    assert complete(api_env, token, state, code="AQcode123").status == 201


def test_callback_answers_json_when_asked(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    state = start_state(api_env, token)
    response = api_env.call(
        "GET",
        "/v1/accounts/oauth/callback",
        query={"code": "AQcode", "state": state},
        headers={"Accept": "application/json"},
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.body["outcome"] == "authorized"
    assert response.body["complete"]["method"] == "POST"
    assert response.body["complete"]["url"].endswith("/v1/accounts/oauth/complete")
    assert response.body["complete"]["body"] == {"code": "AQcode", "state": state}
    assert account_count(api_env, token) == 0


def test_callback_escapes_what_the_query_string_carries(api_env: ApiEnv) -> None:
    script = "<script>alert(1)</script>"
    page = api_env.call(
        "GET", "/v1/accounts/oauth/callback", query={"code": script, "state": f"x'\"{script}"}
    )
    assert page.status == 200
    assert script not in page.body
    assert "&lt;script&gt;" in page.body
    denied = api_env.call(
        "GET", "/v1/accounts/oauth/callback", query={"error": "access_denied", "error_reason": script}
    )
    assert script not in denied.body


def test_callback_shows_instagrams_error(api_env: ApiEnv) -> None:
    query = {
        "error": "access_denied",
        "error_reason": "user_denied",
        "error_description": "The user denied your request.",
    }
    page = api_env.call("GET", "/v1/accounts/oauth/callback", query=query)
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    for value in query.values():
        assert value in page.body
    assert "/v1/accounts/oauth/complete" not in page.body
    as_json = api_env.call(
        "GET", "/v1/accounts/oauth/callback", query=query, headers={"Accept": "application/json"}
    )
    assert as_json.body["outcome"] == "denied"
    assert as_json.body["error_reason"] == "user_denied"
    assert as_json.body["complete"] is None


def test_callback_without_code_or_state_is_400(api_env: ApiEnv) -> None:
    response = api_env.call("GET", "/v1/accounts/oauth/callback", query={"code": "only-a-code"})
    assert response.status == 400
    assert response.body["error"]["code"] == "oauth_invalid_callback"


def test_sandbox_connect_goes_through_complete(api_env: ApiEnv) -> None:
    signup = api_env.signup()
    token = signup["access_token"]
    response = api_env.call("POST", "/v1/accounts/sandbox", token=token, body={"username": "shop"})
    assert response.status == 201, response.body
    assert api_env.oauth.calls[:2] == ["authorize", "exchange_code"]
    spent = api_env.deps.clients.redis.keys(f"rf:oauth-state:{signup['tenant_id']}:*")
    assert len(spent) == 1, "the sandbox flow did not spend its state's nonce"


def test_without_a_configured_redirect_uri_oauth_uses_the_api_callback_on_the_request_host(
    sqlite_url: str,
) -> None:
    """A stack deployed without PublicBaseUrl: the authorize URL and the code exchange both name the
    callback under the execute-api host and stage the dashboard called."""
    for env in make_env(sqlite_url, oauth_redirect_uri=""):
        host = "abc123.execute-api.eu-west-1.amazonaws.com"
        expected = f"https://{host}/{env.local_gateway.stage}/v1/accounts/oauth/callback"
        token = env.signup()["access_token"]
        started = env.call("GET", "/v1/accounts/oauth/start", token=token, headers={"Host": host})
        assert started.status == 200, started.body
        query = parse_qs(urlsplit(started.body["authorize_url"]).query)
        assert query["redirect_uri"] == [expected]
        body = {"code": "AQcode", "state": query["state"][0]}
        done = env.call("POST", "/v1/accounts/oauth/complete", token=token, body=body, headers={"Host": host})
        assert done.status == 201, done.body
        assert env.oauth.redirect_uris == [expected]
