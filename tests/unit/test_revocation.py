"""Revocation takes effect on the next request although the gateway caches the authorizer's policy
(the local gateway caches it like API Gateway, 300 s), on SQLite and fakeredis.

The ``api_env`` here marks the revocation store trusted since long before any token is issued, and
records every database fallback: a refusal must come from the Redis entry read in the rate-limit
round trip, not from a database read, unless the test is about the fallback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from replyflow.adapters.api_rate_limiter import RedisFixedWindowLimiter
from replyflow.clock import epoch_ms
from replyflow.errors import UnauthorizedError
from replyflow.ports import RevocationUnavailableError
from replyflow.services import revocation
from replyflow.services.access import Principal
from tests.unit.test_api_support import ApiEnv, make_env


@pytest.fixture
def db_checks(api_env: ApiEnv) -> list[Principal]:
    """Principals the API checked in the database; the check itself still runs."""
    return api_env.record_db_checks()


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    for env in make_env(sqlite_url):
        # A Redis that has held every revocation for longer than any grace period.
        env.trusted_since_ms = epoch_ms() - revocation.API_KEY_GRACE_MS - 1000
        yield env


def invite_and_login(env: ApiEnv, owner_token: str, role: str) -> dict[str, Any]:
    return env.invite_and_accept(owner_token, f"{role}-{time.monotonic_ns()}@example.com", role)


def refused_within(env: ApiEnv, token: str, revoked_at: float, code: str) -> float:
    """The very next request is refused with ``code``; returns ms from the revocation's response."""
    response = env.call("GET", "/v1/templates", token=token)
    latency_ms = (time.monotonic() - revoked_at) * 1000
    assert response.status == 401, response.body
    assert response.body["error"]["code"] == code
    return latency_ms


def test_a_revoked_api_key_is_refused_on_the_next_request_despite_the_cached_policy(
    api_env: ApiEnv, db_checks: list[Principal]
) -> None:
    owner = api_env.signup()["access_token"]
    created = api_env.call("POST", "/v1/api-keys", token=owner, body={"name": "ci"}).body
    assert api_env.call("GET", "/v1/templates", token=created["key"]).status == 200  # policy now cached
    assert api_env.call("DELETE", f"/v1/api-keys/{created['id']}", token=owner).status == 200
    latency = refused_within(api_env, created["key"], time.monotonic(), "api_key_revoked")
    assert latency < 1000
    assert db_checks == []
    # The owner's other credentials are untouched.
    assert api_env.call("GET", "/v1/templates", token=owner).status == 200


def test_a_removed_member_is_refused_on_the_next_request(api_env: ApiEnv, db_checks: list[Principal]) -> None:
    owner = api_env.signup()["access_token"]
    member = invite_and_login(api_env, owner, "admin")
    assert api_env.call("GET", "/v1/templates", token=member["access_token"]).status == 200
    assert api_env.call("DELETE", f"/v1/members/{member['user_id']}", token=owner).status == 204
    refused_within(api_env, member["access_token"], time.monotonic(), "membership_revoked")
    refreshed = api_env.call("POST", "/v1/auth/refresh", body={"refresh_token": member["refresh_token"]})
    assert refreshed.status == 401
    assert db_checks == []


def test_a_demoted_member_must_refresh_and_the_refresh_reads_the_new_role(
    api_env: ApiEnv, db_checks: list[Principal]
) -> None:
    owner = api_env.signup()["access_token"]
    admin = invite_and_login(api_env, owner, "admin")
    body = {"name": "t", "text": "hi"}
    assert api_env.call("POST", "/v1/templates", token=admin["access_token"], body=body).status == 201
    demoted = api_env.call("PATCH", f"/v1/members/{admin['user_id']}", token=owner, body={"role": "member"})
    assert demoted.status == 200
    refused_within(api_env, admin["access_token"], time.monotonic(), "token_outdated")
    # A refused request with an invalid body is still the 401, not a 422.
    invalid = api_env.call("POST", "/v1/templates", token=admin["access_token"], body={"nope": 1})
    assert invalid.status == 401
    fresh = api_env.call("POST", "/v1/auth/refresh", body={"refresh_token": admin["refresh_token"]}).body
    assert fresh["role"] == "member"
    assert api_env.call("GET", "/v1/templates", token=fresh["access_token"]).status == 200
    denied = api_env.call("POST", "/v1/templates", token=fresh["access_token"], body=body)
    assert denied.status == 403
    assert db_checks == []


def test_a_role_change_to_the_same_role_revokes_nothing(api_env: ApiEnv) -> None:
    owner = api_env.signup()["access_token"]
    member = invite_and_login(api_env, owner, "member")
    same = api_env.call("PATCH", f"/v1/members/{member['user_id']}", token=owner, body={"role": "member"})
    assert same.status == 200
    assert api_env.call("GET", "/v1/templates", token=member["access_token"]).status == 200


def test_logout_ends_that_session_only(api_env: ApiEnv, db_checks: list[Principal]) -> None:
    account = api_env.signup()
    credentials = {"email": account["email"], "password": account["password"]}
    other = api_env.call("POST", "/v1/auth/login", body=credentials).body
    assert api_env.call("GET", "/v1/templates", token=account["access_token"]).status == 200
    # The session refreshed once: its older and newer access tokens both belong to it.
    rotated = api_env.call("POST", "/v1/auth/refresh", body={"refresh_token": account["refresh_token"]}).body
    out = api_env.call("POST", "/v1/auth/logout", body={"refresh_token": rotated["refresh_token"]})
    assert out.status == 204
    revoked_at = time.monotonic()
    refused_within(api_env, account["access_token"], revoked_at, "session_ended")
    refused_within(api_env, rotated["access_token"], revoked_at, "session_ended")
    assert api_env.call("GET", "/v1/templates", token=other["access_token"]).status == 200
    assert db_checks == []


def test_refresh_token_reuse_ends_the_session_for_access_tokens_too(api_env: ApiEnv) -> None:
    account = api_env.signup()
    first = api_env.call("POST", "/v1/auth/refresh", body={"refresh_token": account["refresh_token"]}).body
    reused = api_env.call("POST", "/v1/auth/refresh", body={"refresh_token": account["refresh_token"]})
    assert reused.body["error"]["code"] == "refresh_token_reused"
    refused_within(api_env, first["access_token"], time.monotonic(), "session_ended")


class _DownRedis(RedisFixedWindowLimiter):
    """A limiter whose Redis does not answer (fakeredis's disconnected server: the unit tier has no
    sockets)."""

    def __init__(self) -> None:
        server = fakeredis.FakeServer()
        server.connected = False
        super().__init__(fakeredis.FakeRedis(server=server))


def test_with_redis_down_the_api_checks_callers_in_the_database_and_stays_up(
    api_env: ApiEnv, db_checks: list[Principal]
) -> None:
    owner = api_env.signup()["access_token"]
    member = invite_and_login(api_env, owner, "admin")
    key = api_env.call("POST", "/v1/api-keys", token=owner, body={"name": "ci"}).body
    for token in (member["access_token"], key["key"]):
        assert api_env.call("GET", "/v1/templates", token=token).status == 200
    assert api_env.call("DELETE", f"/v1/members/{member['user_id']}", token=owner).status == 204
    assert api_env.call("DELETE", f"/v1/api-keys/{key['id']}", token=owner).status == 200
    api_env.use(limiter=_DownRedis())
    refused_within(api_env, member["access_token"], time.monotonic(), "membership_revoked")
    refused_within(api_env, key["key"], time.monotonic(), "api_key_revoked")
    assert api_env.call("GET", "/v1/templates", token=owner).status == 200  # not fail closed
    assert len(db_checks) == 3


def test_a_redis_that_lost_its_entries_is_not_trusted_for_older_tokens(
    api_env: ApiEnv, db_checks: list[Principal]
) -> None:
    account = api_env.signup()
    owner = account["access_token"]
    credentials = {"email": account["email"], "password": account["password"]}
    member = invite_and_login(api_env, owner, "admin")
    assert api_env.call("DELETE", f"/v1/members/{member['user_id']}", token=owner).status == 204
    api_env.deps.clients.redis.flushall()  # a restart without persistence: entry and marker gone
    refused_within(api_env, member["access_token"], time.monotonic(), "membership_revoked")
    assert [p.principal_id for p in db_checks] == [member["user_id"]]
    # The owner's older token is checked in the database too, and passes; a new one is Redis's again.
    assert api_env.call("GET", "/v1/templates", token=owner).status == 200
    assert len(db_checks) == 2
    time.sleep(0.002)
    again = api_env.call("POST", "/v1/auth/login", body=credentials).body
    assert api_env.call("GET", "/v1/templates", token=again["access_token"]).status == 200
    assert len(db_checks) == 2


class _FailingStore:
    def put(self, key: str, value: str, ttl_seconds: int) -> None:
        raise RevocationUnavailableError("the revocation could not be recorded; try again")

    def put_if_absent(self, key: str, value: str) -> None:
        return


def test_a_revocation_that_cannot_be_recorded_fails_and_changes_nothing(api_env: ApiEnv) -> None:
    owner = api_env.signup()["access_token"]
    member = invite_and_login(api_env, owner, "admin")
    api_env.use(revocation_store=_FailingStore())
    failed = api_env.call("DELETE", f"/v1/members/{member['user_id']}", token=owner)
    assert failed.status == 503
    assert failed.body["error"]["code"] == "revocation_unavailable"
    members = api_env.call("GET", "/v1/members", token=owner).body
    assert member["user_id"] in {m["user_id"] for m in members}  # rolled back
    logout = api_env.call("POST", "/v1/auth/logout", body={"refresh_token": member["refresh_token"]})
    assert logout.status == 503
    refreshed = api_env.call("POST", "/v1/auth/refresh", body={"refresh_token": member["refresh_token"]})
    assert refreshed.status == 200  # the logout rolled back too


def _user(issued_at_ms: int | None = 1_000, session_id: str | None = "s1") -> Principal:
    return Principal("t1", "u1", "admin", "user", session_id=session_id, issued_at_ms=issued_at_ms)


def test_judge_refuses_by_the_entries_and_defers_to_the_database_when_unsure() -> None:
    key = Principal("t1", "k1", "admin", "api_key")
    # Trusted marker before the token, no entries: admitted without the database.
    assert revocation.judge(_user(), ["500", None, None], 2_000) is False
    # Epoch at or after the token: refused; before it (a refresh after the change): admitted.
    with pytest.raises(UnauthorizedError) as outdated:
        revocation.judge(_user(), ["500", "1000:role_changed", None], 2_000)
    assert outdated.value.code == "token_outdated"
    assert revocation.judge(_user(), ["500", "999:role_changed", None], 2_000) is False
    with pytest.raises(UnauthorizedError) as removed:
        revocation.judge(_user(), ["500", "1500:removed", None], 2_000)
    assert removed.value.code == "membership_revoked"
    with pytest.raises(UnauthorizedError) as ended:
        revocation.judge(_user(), ["500", None, "logged_out"], 2_000)
    assert ended.value.code == "session_ended"
    with pytest.raises(UnauthorizedError) as revoked:
        revocation.judge(key, ["500", "900:revoked"], 2_000)
    assert revoked.value.code == "api_key_revoked"
    # Unsure: no answer, no marker, a token older than the marker, an API key inside the grace.
    assert revocation.judge(_user(), None, 2_000) is True
    assert revocation.judge(_user(), [None, None, None], 2_000) is True
    assert revocation.judge(_user(issued_at_ms=400), ["500", None, None], 2_000) is True
    assert revocation.judge(key, ["500", None], 2_000) is True
    assert revocation.judge(key, ["500", None], 500 + revocation.API_KEY_GRACE_MS) is False


def test_read_keys_are_one_per_principal_and_session() -> None:
    assert revocation.read_keys(_user()) == [
        "rf:rev:{t:t1}:since",
        "rf:rev:{t:t1}:user:u1",
        "rf:rev:{t:t1}:sid:s1",
    ]
    assert revocation.read_keys(_user(session_id=None)) == ["rf:rev:{t:t1}:since", "rf:rev:{t:t1}:user:u1"]
