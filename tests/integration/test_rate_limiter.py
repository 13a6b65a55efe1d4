"""The Redis rate limiter under several processes against the real Redis: never over budget, and
every deferred message gets its slot in the end."""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest

from replyflow.adapters.rate_limiter import RedisRateLimiter
from tests.private_redis import client_for

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_url(redis_any_url: str) -> str:
    """Every test here runs on the standalone Redis and on the three-master cluster."""
    return redis_any_url


def _send_all(
    url: str, namespace: str, account: str, messages: int, budget: int, per_second: int, out
) -> None:
    limiter = RedisRateLimiter(client_for(url), per_second=per_second, namespace=namespace)
    deferrals = 0
    for _ in range(messages):
        while True:
            slot = limiter.acquire(account, budget)
            if slot.granted:
                break
            deferrals += 1
            time.sleep(slot.delay_seconds)  # the deferral: come back when the limiter says
    out.put(deferrals)


def _race(url: str, namespace: str, account: str, tries: int, budget: int, out) -> None:
    limiter = RedisRateLimiter(client_for(url), per_second=10_000, namespace=namespace)
    out.put(sum(1 for _ in range(tries) if limiter.acquire(account, budget).granted))


def _run(target, args_list):
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, out)) for args in args_list]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
        assert proc.exitcode == 0
    return results


def test_racing_processes_never_exceed_the_hourly_budget(redis_url: str, redis_namespace: str) -> None:
    account = uuid.uuid4().hex
    granted = _run(_race, [(redis_url, redis_namespace, account, 60, 50) for _ in range(8)])
    assert sum(granted) == 50


def test_every_deferred_message_is_sent_and_no_second_holds_more_than_the_cap(
    redis_url: str, redis_namespace: str
) -> None:
    account, per_second, processes, each = uuid.uuid4().hex, 15, 6, 10
    deferrals = _run(
        _send_all, [(redis_url, redis_namespace, account, each, 1000, per_second) for _ in range(processes)]
    )
    assert sum(deferrals) > 0  # the cap really deferred messages...
    client = client_for(redis_url)
    hour_key = f"{redis_namespace}:rl:{{{account}}}:h"
    entries: list[tuple[bytes, float]] = client.zrange(hour_key, 0, -1, withscores=True)  # type: ignore[assignment]
    times = sorted(float(score) for _, score in entries)
    assert len(times) == processes * each  # ...and every one of them got its slot in the end
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t < start + 1000)
        assert in_window <= per_second
    # The hourly budget is just as hard: with it spent, the next one waits for the window.
    limiter = RedisRateLimiter(client, per_second=10_000, namespace=redis_namespace)
    slot = limiter.acquire(account, processes * each)
    assert not slot.granted
    assert 3500 < slot.delay_seconds <= 3600
    client.delete(hour_key)
