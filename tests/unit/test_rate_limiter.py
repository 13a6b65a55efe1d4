"""The Redis rate limiter's Lua script on fakeredis (no sockets), with explicit times."""

from __future__ import annotations

import fakeredis
import pytest

from replyflow.adapters.rate_limiter import RedisCooldowns, RedisRateLimiter

T0 = 1_800_000_000_000  # ms


@pytest.fixture
def limiter() -> RedisRateLimiter:
    return RedisRateLimiter(fakeredis.FakeRedis(), ceiling_per_hour=750, per_second=3)


def test_hourly_budget_then_the_exact_wait(limiter: RedisRateLimiter) -> None:
    granted = [limiter.acquire("a", 5, now_ms=T0 + i * 1000).granted for i in range(5)]
    assert granted == [True] * 5
    slot = limiter.acquire("a", 5, now_ms=T0 + 10_000)
    assert not slot.granted
    assert slot.delay_seconds == pytest.approx(3600 - 10)  # when the oldest leaves the window
    assert limiter.acquire("a", 5, now_ms=T0 + 3_600_001).granted
    assert limiter.acquire("b", 5, now_ms=T0 + 10_000).granted  # per account


def test_per_second_cap(limiter: RedisRateLimiter) -> None:
    assert [limiter.acquire("a", 200, now_ms=T0).granted for _ in range(4)] == [True, True, True, False]
    slot = limiter.acquire("a", 200, now_ms=T0 + 400)
    assert not slot.granted
    assert slot.delay_seconds == pytest.approx(0.6)
    assert limiter.acquire("a", 200, now_ms=T0 + 1001).granted


def test_the_ceiling_caps_any_budget() -> None:
    limiter = RedisRateLimiter(fakeredis.FakeRedis(), ceiling_per_hour=750, per_second=10_000)
    assert limiter.limit_for(5000) == 750
    results = [limiter.acquire("a", 5000, now_ms=T0).granted for _ in range(760)]
    assert results.count(True) == 750


def test_release_gives_the_slot_back(limiter: RedisRateLimiter) -> None:
    slots = [limiter.acquire("a", 2, now_ms=T0 + i) for i in range(2)]
    assert not limiter.acquire("a", 2, now_ms=T0 + 5000).granted
    limiter.release("a", slots[0].token)
    assert limiter.acquire("a", 2, now_ms=T0 + 5000).granted
    assert limiter.used("a") == 2


def test_pause_defers_everyone_until_it_ends(limiter: RedisRateLimiter) -> None:
    limiter.pause("a", 120, now_ms=T0)
    slot = limiter.acquire("a", 200, now_ms=T0 + 20_000)
    assert not slot.granted
    assert slot.delay_seconds == pytest.approx(100)
    limiter.pause("a", 10, now_ms=T0 + 20_000)  # a shorter pause never shortens a longer one
    assert not limiter.acquire("a", 200, now_ms=T0 + 60_000).granted
    assert limiter.acquire("a", 200, now_ms=T0 + 120_001).granted


def test_an_app_wide_pause_defers_every_account(limiter: RedisRateLimiter) -> None:
    limiter.pause_all(60, now_ms=T0)
    for account in ("a", "b"):
        slot = limiter.acquire(account, 200, now_ms=T0 + 15_000)
        assert not slot.granted
        assert slot.delay_seconds == pytest.approx(45)
    limiter.pause("a", 120, now_ms=T0)  # the longer of the two pauses wins
    assert limiter.acquire("a", 200, now_ms=T0 + 60_001).delay_seconds == pytest.approx(59.999)
    assert limiter.acquire("b", 200, now_ms=T0 + 60_001).granted
    assert limiter.used("b") == 1  # a refused slot consumed nothing


def test_redis_time_is_used_without_an_explicit_now(limiter: RedisRateLimiter) -> None:
    assert limiter.acquire("z", 1).granted
    assert not limiter.acquire("z", 1).granted


def test_cooldowns_and_rotation() -> None:
    cooldowns = RedisCooldowns(fakeredis.FakeRedis())
    assert cooldowns.acquire("k", 60)
    assert not cooldowns.acquire("k", 60)
    cooldowns.release("k")
    assert cooldowns.acquire("k", 60)
    assert [cooldowns.next_index("r") for _ in range(3)] == [0, 1, 2]
