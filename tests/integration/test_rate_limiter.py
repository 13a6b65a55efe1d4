"""The Redis rate limiter under several processes against the real Redis: never over budget, and
every deferred message gets its slot in the end."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Callable

import pytest

from replyflow.adapters.rate_limiter import RedisRateLimiter, Slot
from replyflow.ports import SlotRequest
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


# -- a batch's slots in one call (``acquire_many``) ---------------------------------------------------


def test_a_batch_takes_its_slots_in_order_with_a_partial_grant_per_account(
    redis_url: str, redis_namespace: str
) -> None:
    limiter = RedisRateLimiter(client_for(redis_url), per_second=10_000, namespace=redis_namespace)
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    requests = [SlotRequest(a, 3), SlotRequest(b, 3), SlotRequest(a, 3), SlotRequest(a, 3), SlotRequest(a, 3)]
    slots = limiter.acquire_many(requests)
    assert all(isinstance(s, Slot) for s in slots)
    granted = [s.granted for s in slots if isinstance(s, Slot)]
    assert granted == [True, True, True, True, False]  # a's fourth finds its window full
    denied = slots[4]
    assert isinstance(denied, Slot)
    assert 3500 < denied.delay_seconds <= 3600
    assert denied.token == ""
    assert limiter.used(a) == 3
    assert limiter.used(b) == 1
    tokens = [s.token for s in slots if isinstance(s, Slot) and s.granted]
    assert len(set(tokens)) == 4  # each slot its own token, so each can be released alone
    limiter.release(a, tokens[0])
    assert limiter.used(a) == 2
    assert limiter.acquire_many([]) == []


def test_a_batch_rebuilds_a_lost_window_once_per_account_then_counts_against_it(
    redis_url: str, redis_namespace: str
) -> None:
    limiter = RedisRateLimiter(client_for(redis_url), per_second=10_000, namespace=redis_namespace)
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    now_ms = int(time.time() * 1000)
    reads: list[str] = []

    def history(account: str, sends: int) -> Callable[[], list[int]]:
        def read() -> list[int]:
            reads.append(account)
            return [now_ms - 60_000 * (n + 1) for n in range(sends)]

        return read

    requests = [SlotRequest(a, 3, history(a, 2)) for _ in range(3)] + [SlotRequest(b, 3, history(b, 0))]
    slots = limiter.acquire_many(requests)
    assert [s.granted for s in slots if isinstance(s, Slot)] == [True, False, False, True]
    assert sorted(reads) == sorted([a, b])  # one ledger read per account, not per request
    assert limiter.used(a) == 3  # the two sends of the ledger's history, then one slot
    # The window exists now: a second batch neither reads the ledger nor gets a fresh budget.
    again = limiter.acquire_many([SlotRequest(a, 3, history(a, 2))])
    assert isinstance(again[0], Slot)
    assert not again[0].granted
    assert sorted(reads) == sorted([a, b])


def test_a_batch_waits_out_an_app_wide_pause(redis_url: str, redis_namespace: str) -> None:
    limiter = RedisRateLimiter(client_for(redis_url), per_second=10_000, namespace=redis_namespace)
    accounts = [uuid.uuid4().hex for _ in range(3)]
    limiter.pause_all(60)
    slots = limiter.acquire_many([SlotRequest(account, 100) for account in accounts])
    assert all(isinstance(s, Slot) and not s.granted and 55 < s.delay_seconds <= 60 for s in slots)
    assert [limiter.used(account) for account in accounts] == [0, 0, 0]


def test_a_limiter_that_does_not_answer_gives_each_request_its_error() -> None:
    import redis

    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    limiter = RedisRateLimiter(down, namespace="rftest:down")
    answers = limiter.acquire_many([SlotRequest("a", 3), SlotRequest("b", 3)])
    assert len(answers) == 2
    assert all(isinstance(answer, redis.ConnectionError) for answer in answers)
