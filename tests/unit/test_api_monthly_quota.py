"""The plan's monthly API quota: counted per tenant per calendar month (UTC) with the per-minute budget,
for the workspace's API keys (signed-in users have the console's allowance instead:
tests/unit/test_api_console_allowance.py), with headers for both and a 429 that names the limit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import fakeredis
import pytest
import redis

from replyflow.adapters.api_rate_limiter import RedisFixedWindowLimiter
from replyflow.domain import plans
from replyflow.services.rate_limit_api import ApiBudget, month_window, tenant_rules
from tests.unit.test_api_support import ApiEnv, make_env


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def test_the_month_is_the_utc_calendar_month_and_resets_at_its_end() -> None:
    assert month_window(datetime(2026, 12, 31, 23, 59, 30)) == ("202612", datetime(2027, 1, 1))
    assert month_window(datetime(2027, 2, 1)) == ("202702", datetime(2027, 3, 1))
    limiter = RedisFixedWindowLimiter(fakeredis.FakeRedis(), namespace="t")
    late = datetime(2026, 12, 31, 23, 59, 30)
    rules = tenant_rules("t1", "free", 60, late)
    (minute, month), _ = limiter.hit_all_and_get(rules, [])
    assert (minute.limit, minute.remaining, minute.reset_seconds) == (60, 59, 60)
    assert (month.limit, month.remaining, month.reset_seconds) == (100_000, 99_999, 30)
    (_, january), _ = limiter.hit_all_and_get(
        tenant_rules("t1", "free", 60, datetime(2027, 1, 1, 0, 0, 5)), []
    )
    assert january.remaining == 99_999  # a new month starts from zero
    assert tenant_rules("t1", "business", 60, late)[1][1] == plans.MONTHLY_API_REQUESTS["business"]
    assert tenant_rules("t1", "unknown-plan", 60, late)[1][1] == plans.MONTHLY_API_REQUESTS["free"]


def test_the_quotas_grow_with_the_plan_and_cover_every_plan() -> None:
    quotas = [plans.monthly_api_requests(p["code"]) for p in plans.PLANS]
    assert set(plans.MONTHLY_API_REQUESTS) == {p["code"] for p in plans.PLANS}
    assert quotas == sorted(quotas)
    assert len(set(quotas)) == len(quotas)


def test_the_monthly_refusal_wins_over_the_minute_one() -> None:
    from replyflow.ports import RateDecision

    now = datetime(2026, 12, 1, 11, 0)
    both = ApiBudget(
        "plan", RateDecision(False, 60, 0, 12), RateDecision(False, 5, 0, 100), datetime(2027, 1, 1)
    )
    refusal = both.refusal(now)
    assert refusal is not None
    assert refusal.code == "monthly_quota_exceeded"
    assert refusal.details["resets_at"] == "2027-01-01T00:00:00Z"
    minute_only = ApiBudget(
        "plan", RateDecision(False, 60, 0, 12), RateDecision(True, 5, 3, 100), datetime(2027, 1, 1)
    )
    refusal = minute_only.refusal(now)
    assert refusal is not None
    assert refusal.code == "rate_limited"
    assert refusal.details == {
        "allowance": "plan",
        "limit": 60,
        "window": "minute",
        "window_seconds": 60,
        "resets_at": "2026-12-01T11:00:12Z",
    }


def test_a_redis_that_does_not_answer_fails_open_for_both_limits() -> None:
    class Broken(fakeredis.FakeRedis):
        def pipeline(self, *args: object, **kwargs: object) -> redis.client.Pipeline:
            raise redis.ConnectionError("down")

    limiter = RedisFixedWindowLimiter(Broken(), namespace="t")
    decisions, values = limiter.hit_all_and_get(
        tenant_rules("t1", "free", 60, datetime(2026, 12, 1)), ["rf:rev:{t:t1}:since"]
    )
    assert values is None
    assert all(d.allowed for d in decisions)


def test_the_monthly_quota_refuses_the_tenants_api_keys_and_not_its_console_users(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(plans.MONTHLY_API_REQUESTS, "free", 3)
    owner = api_env.signup()["access_token"]
    other = api_env.signup("Other")["access_token"]
    keys = []
    for name in ("ci", "cron"):
        created = api_env.call("POST", "/v1/api-keys", token=owner, body={"name": name})
        assert created.status == 201, created.body
        assert "X-RateLimit-Limit-Month" not in created.headers  # a user's request: not the plan's
        keys.append(created.body["key"])
    first = api_env.call("GET", "/v1/templates", token=keys[0])
    assert first.status == 200
    assert first.headers["X-RateLimit-Allowance"] == "plan"
    assert first.headers["X-RateLimit-Limit-Month"] == "3"
    assert first.headers["X-RateLimit-Remaining-Month"] == "2"
    assert first.headers["X-RateLimit-Limit"] == "60"
    assert 0 < int(first.headers["X-RateLimit-Reset-Month"]) <= 31 * 86400
    assert api_env.call("GET", "/v1/templates", token=keys[1]).status == 200  # the keys share it
    last = api_env.call("GET", "/v1/templates", token=keys[0])
    assert (last.status, last.headers["X-RateLimit-Remaining-Month"]) == (200, "0")
    for key in keys:
        refused = api_env.call("GET", "/v1/templates", token=key)
        assert refused.status == 429
        error = refused.body["error"]
        assert error["code"] == "monthly_quota_exceeded"
        assert "monthly quota of 3 API requests" in error["message"]
        assert error["details"]["window"] == "month"
        assert error["details"]["allowance"] == "plan"
        assert error["details"]["resets_at"].endswith("-01T00:00:00Z")
        assert refused.headers["X-RateLimit-Remaining-Month"] == "0"
        assert refused.headers["X-RateLimit-Allowance"] == "plan"
        assert int(refused.headers["Retry-After"]) == int(refused.headers["X-RateLimit-Reset-Month"])
    # The console keeps working: the owner can still see the usage and upgrade.
    browsing = api_env.call("GET", "/v1/templates", token=owner)
    assert (browsing.status, browsing.headers["X-RateLimit-Allowance"]) == (200, "console")
    assert api_env.call("GET", "/v1/templates", token=other).status == 200  # per tenant
