"""Two allowances: the plan's (API keys, per workspace) and the console's (each signed-in user, per
workspace). Browsing never uses up the keys' budget, one user's burst does not refuse another, both
live on the tenant's cluster slot with the revocation reads, and headers and the 429 name the one that
ran out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import fakeredis
import pytest
import redis

from replyflow.adapters.api_rate_limiter import RedisFixedWindowLimiter
from replyflow.adapters.redis_client import same_slot
from replyflow.domain import plans
from replyflow.services import revocation
from replyflow.services.access import Principal
from replyflow.services.rate_limit_api import allowance_for, console_rules
from tests.unit.test_api_support import ApiEnv, make_env

NOW = datetime(2026, 12, 1, 11, 0)
USER = Principal("t1", "u1", "owner", "user", session_id="s1", issued_at_ms=1)
KEY = Principal("t1", "k1", "admin", "api_key")


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def test_a_user_counts_against_their_own_console_allowance_and_a_key_against_the_plans() -> None:
    console = allowance_for(USER, "free", 60, NOW)
    assert console.name == "console"
    assert console.rules == [("api-user:{t:t1}:u1", plans.CONSOLE_REQUESTS_PER_MINUTE, 60)]
    assert console.month_resets_at is None
    plan = allowance_for(KEY, "free", 60, NOW)
    assert plan.name == "plan"
    assert [(key, limit) for key, limit, _window in plan.rules] == [
        ("api:{t:t1}", 60),
        ("api-month:{t:t1}:202612", plans.MONTHLY_API_REQUESTS["free"]),
    ]
    assert plan.month_resets_at == datetime(2027, 1, 1)
    # Per user per workspace: another user, or the same user in another workspace, counts apart.
    assert console_rules("t1", "u2")[0][0] != console.rules[0][0]
    assert console_rules("t2", "u1")[0][0] == "api-user:{t:t2}:u1"


def test_normal_browsing_stays_far_inside_the_console_allowance() -> None:
    # A page costs 3-4 requests; the logs and stats pages poll every 5 s (12-16 a minute). A person
    # opening a page every second for a minute on a polling page: 4 * 60 + 16.
    assert plans.CONSOLE_REQUESTS_PER_MINUTE > 4 * 60 + 16
    # ... and it is a ceiling: a script driving a session gets no more than a pro plan's API keys.
    pro = next(p for p in plans.PLANS if p["code"] == "pro")
    assert pro["api_requests_per_minute"] >= plans.CONSOLE_REQUESTS_PER_MINUTE


@pytest.mark.parametrize("principal", [USER, KEY], ids=["user", "api_key"])
def test_every_key_of_one_request_is_on_the_tenants_slot(principal: Principal) -> None:
    allowance = allowance_for(principal, "pro", 600, NOW)
    keys = [f"rf:rl:{key}" for key, _limit, _window in allowance.rules] + revocation.read_keys(principal)
    same_slot(keys)  # raises on a CROSSSLOT
    limiter = RedisFixedWindowLimiter(fakeredis.FakeRedis())
    decisions, values = limiter.hit_all_and_get(allowance.rules, revocation.read_keys(principal))
    assert values == [None] * len(revocation.read_keys(principal))
    budget = allowance.budget(decisions)
    assert budget.allowance == allowance.name
    assert budget.refusal(NOW) is None
    headers = budget.headers()
    assert headers["X-RateLimit-Allowance"] == allowance.name
    assert ("X-RateLimit-Limit-Month" in headers) is (principal is KEY)


def test_the_console_allowance_fails_open_when_redis_does_not_answer() -> None:
    class Broken(fakeredis.FakeRedis):
        def pipeline(self, *args: object, **kwargs: object) -> redis.client.Pipeline:
            raise redis.ConnectionError("down")

    limiter = RedisFixedWindowLimiter(Broken(), namespace="t")
    allowance = allowance_for(USER, "free", 60, NOW)
    decisions, values = limiter.hit_all_and_get(allowance.rules, revocation.read_keys(USER))
    assert values is None
    assert allowance.budget(decisions).refusal(NOW) is None


def test_browsing_does_not_use_up_the_plan_and_a_users_burst_refuses_only_that_user(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plans, "CONSOLE_REQUESTS_PER_MINUTE", 5)
    owner = api_env.signup()["access_token"]
    created = api_env.call("POST", "/v1/api-keys", token=owner, body={"name": "ci"})
    assert created.status == 201, created.body
    member = api_env.invite_and_accept(owner, "m@example.com")["access_token"]  # the owner's 2nd
    statuses = [api_env.call("GET", "/v1/templates", token=owner).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = api_env.call("GET", "/v1/templates", token=owner)
    assert refused.status == 429
    error = refused.body["error"]
    assert error["code"] == "rate_limited"
    assert error["message"].startswith("the console allows each signed-in user 5 requests per minute")
    assert error["details"]["allowance"] == "console"
    assert (error["details"]["limit"], error["details"]["window"]) == (5, "minute")
    assert refused.headers["X-RateLimit-Allowance"] == "console"
    assert refused.headers["X-RateLimit-Limit"] == "5"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Limit-Month" not in refused.headers
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another member of the workspace has an allowance of their own ...
    other = api_env.call("GET", "/v1/templates", token=member)
    assert (other.status, other.headers["X-RateLimit-Remaining"]) == (200, "4")
    # ... and the workspace's API key still has all of the plan's: no user request counted in it.
    keyed = api_env.call("GET", "/v1/templates", token=created.body["key"])
    assert keyed.status == 200
    assert keyed.headers["X-RateLimit-Allowance"] == "plan"
    assert keyed.headers["X-RateLimit-Remaining"] == "59"
    assert keyed.headers["X-RateLimit-Remaining-Month"] == str(plans.MONTHLY_API_REQUESTS["free"] - 1)
