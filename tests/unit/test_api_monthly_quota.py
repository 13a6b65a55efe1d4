"""The plan's monthly API quota: counted per tenant per calendar month (UTC) with the per-minute budget,
for access tokens and API keys alike, with headers for both and a 429 that names the limit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import fakeredis
import pytest
import redis

from replyflow.adapters.api_rate_limiter import RedisFixedWindowLimiter
from replyflow.domain import plans
from replyflow.services.rate_limit_api import TenantBudget, month_window, tenant_rules
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
    both = TenantBudget(RateDecision(False, 60, 0, 12), RateDecision(False, 5, 0, 100), datetime(2027, 1, 1))
    refusal = both.refusal(now)
    assert refusal is not None
    assert refusal.code == "monthly_quota_exceeded"
    assert refusal.details["resets_at"] == "2027-01-01T00:00:00Z"
    minute_only = TenantBudget(
        RateDecision(False, 60, 0, 12), RateDecision(True, 5, 3, 100), datetime(2027, 1, 1)
    )
    refusal = minute_only.refusal(now)
    assert refusal is not None
    assert refusal.code == "rate_limited"
    assert refusal.details == {
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


def test_the_monthly_quota_refuses_jwt_and_api_key_callers_of_the_tenant(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(plans.MONTHLY_API_REQUESTS, "free", 4)
    owner = api_env.signup()["access_token"]
    other = api_env.signup("Other")["access_token"]
    created = api_env.call("POST", "/v1/api-keys", token=owner, body={"name": "ci"})
    assert created.status == 201, created.body
    first = api_env.call("GET", "/v1/templates", token=owner)
    assert first.status == 200
    assert first.headers["X-RateLimit-Limit-Month"] == "4"
    assert first.headers["X-RateLimit-Remaining-Month"] == "2"  # creating the key was the first
    assert first.headers["X-RateLimit-Limit"] == "60"
    assert 0 < int(first.headers["X-RateLimit-Reset-Month"]) <= 31 * 86400
    assert api_env.call("GET", "/v1/templates", token=created.body["key"]).status == 200
    last = api_env.call("GET", "/v1/templates", token=owner)
    assert (last.status, last.headers["X-RateLimit-Remaining-Month"]) == (200, "0")
    for token in (owner, created.body["key"]):
        refused = api_env.call("GET", "/v1/templates", token=token)
        assert refused.status == 429
        error = refused.body["error"]
        assert error["code"] == "monthly_quota_exceeded"
        assert "monthly quota of 4 API requests" in error["message"]
        assert error["details"]["window"] == "month"
        assert error["details"]["resets_at"].endswith("-01T00:00:00Z")
        assert refused.headers["X-RateLimit-Remaining-Month"] == "0"
        assert int(refused.headers["Retry-After"]) == int(refused.headers["X-RateLimit-Reset-Month"])
    assert api_env.call("GET", "/v1/templates", token=other).status == 200  # per tenant
