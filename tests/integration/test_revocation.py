"""On the real MariaDB and Redis: a workspace keeps an owner when two owners demote or remove each
other at the same moment (two threads, each on its own connection), and a revocation is refused on
the very next request through API Gateway's cached policy, with the latency recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from replyflow.clock import epoch_ms, utcnow
from replyflow.db.engine import session_scope
from replyflow.db.repositories import tenants
from replyflow.errors import ConflictError, ForbiddenError
from replyflow.services import members, revocation
from replyflow.services.access import Principal
from replyflow.services.members import RoleChange
from tests.unit.test_api_support import ApiEnv, make_env

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_url(redis_any_url: str) -> str:
    """Every test here runs on the standalone Redis and on the three-master cluster."""
    return redis_any_url


WORKSPACES = 8


@pytest.fixture
def env(mysql_url: str, redis_url: str) -> Iterator[ApiEnv]:
    yield from make_env(mysql_url, redis_url)


def two_owners(env: ApiEnv) -> tuple[Principal, Principal]:
    signup = env.signup("Owners")
    first = Principal(signup["tenant_id"], signup["user_id"], "owner", "user")
    email = f"second-{time.monotonic_ns()}@example.com"
    invited = env.invite_and_accept(signup["access_token"], email, role="owner")
    return first, Principal(first.tenant_id, invited["user_id"], "owner", "user")


def owners_of(env: ApiEnv, tenant_id: str) -> int:
    with session_scope(env.deps.clients.writer_sessions) as session:
        return tenants.owner_count(session, tenant_id)


def at_once(actions: list[Callable[[], None]]) -> list[str]:
    """Runs the actions on their own threads (own sessions, so own connections), released together."""
    barrier = threading.Barrier(len(actions))

    def run(action: Callable[[], None]) -> str:
        barrier.wait()
        try:
            action()
        except (ConflictError, ForbiddenError) as refused:
            return refused.code
        return "done"

    with ThreadPoolExecutor(len(actions)) as pool:
        return list(pool.map(run, actions))


def demote(env: ApiEnv, actor: Principal, target: Principal) -> Callable[[], None]:
    def action() -> None:
        with session_scope(env.deps.clients.writer_sessions) as session:
            members.change_role(
                session, env.deps.revoker, actor, target.principal_id, RoleChange(role="admin")
            )

    return action


def remove(env: ApiEnv, actor: Principal, target: Principal) -> Callable[[], None]:
    def action() -> None:
        with session_scope(env.deps.clients.writer_sessions) as session:
            members.remove(session, env.deps.revoker, actor, target.principal_id, now=utcnow())

    return action


@pytest.mark.parametrize("move", [demote, remove], ids=["demote", "remove"])
def test_two_owners_turning_on_each_other_at_once_leave_the_workspace_an_owner(
    env: ApiEnv, move: Callable[[ApiEnv, Principal, Principal], Callable[[], None]]
) -> None:
    outcomes: list[list[str]] = []
    for _ in range(WORKSPACES):
        a, b = two_owners(env)
        outcomes.append(sorted(at_once([move(env, a, b), move(env, b, a)])))
        assert owners_of(env, a.tenant_id) == 1, outcomes
    # Exactly one of each pair won; the other found itself no longer an owner (or the last owner).
    assert all(o[0] == "done" and o[1] in ("insufficient_role", "last_owner") for o in outcomes), outcomes


def _trusted_for_a_while(env: ApiEnv) -> None:
    """Redis here has held every revocation of the workspaces signed up from now on for longer than
    any grace period (no database fallback): the latencies below are those of the Redis path."""
    env.trusted_since_ms = epoch_ms() - revocation.API_KEY_GRACE_MS - 1000


def test_revocations_are_refused_on_the_next_request_through_the_cached_policy(
    env: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    _trusted_for_a_while(env)
    fallbacks = env.record_db_checks()
    account = env.signup("Latency")
    owner = account["access_token"]
    key = env.call("POST", "/v1/api-keys", token=owner, body={"name": "ci"}).body
    email = f"member-{time.monotonic_ns()}@example.com"
    member = env.invite_and_accept(owner, email, "admin")
    session = env.call(
        "POST", "/v1/auth/login", body={"email": account["email"], "password": account["password"]}
    ).body
    for token in (key["key"], member["access_token"], session["access_token"]):
        assert env.call("GET", "/v1/templates", token=token).status == 200  # policies cached now

    def revoke_key() -> Any:
        return env.call("DELETE", f"/v1/api-keys/{key['id']}", token=owner)

    def demote_member() -> Any:
        return env.call("PATCH", f"/v1/members/{member['user_id']}", token=owner, body={"role": "member"})

    def log_out() -> Any:
        return env.call("POST", "/v1/auth/logout", body={"refresh_token": session["refresh_token"]})

    revocations: list[tuple[str, str, Callable[[], Any], str]] = [
        ("api key revoked", key["key"], revoke_key, "api_key_revoked"),
        ("member demoted", member["access_token"], demote_member, "token_outdated"),
        ("session logged out", session["access_token"], log_out, "session_ended"),
    ]
    latencies: dict[str, float] = {}
    for name, token, revoke, code in revocations:
        started = time.monotonic()
        assert revoke().status in (200, 204)
        refused = env.call("GET", "/v1/templates", token=token)
        latencies[name] = (time.monotonic() - started) * 1000
        assert refused.status == 401, (name, refused.body)
        assert refused.body["error"]["code"] == code
    # Removal after the demotion: the refreshed (member) token is refused at once too.
    fresh = env.call("POST", "/v1/auth/refresh", body={"refresh_token": member["refresh_token"]}).body
    assert env.call("GET", "/v1/templates", token=fresh["access_token"]).status == 200
    started = time.monotonic()
    assert env.call("DELETE", f"/v1/members/{member['user_id']}", token=owner).status == 204
    refused = env.call("GET", "/v1/templates", token=fresh["access_token"])
    latencies["member removed"] = (time.monotonic() - started) * 1000
    assert refused.body["error"]["code"] == "membership_revoked"
    assert fallbacks == []
    print("revocation -> refusal (ms, revoking request + next request):", latencies)
    assert max(latencies.values()) < 2000
    assert env.call("GET", "/v1/templates", token=owner).status == 200
