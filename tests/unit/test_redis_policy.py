"""The Redis failure policy without sockets: one retry, then the breaker opens and calls fail at once,
one probe after the open period, a success closes it; nested retry loops (redis-py's reconnect
inside a command) do not multiply the attempts; the policy is what every real client gets."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import redis

from replyflow.adapters import redis_client
from replyflow.adapters.redis_client import BreakerRetry, CircuitBreaker, RedisUnavailableError, redis_options


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(redis_client.time, "sleep", slept.append)
    return slept


class Server:
    """Stands in for Redis: fails while ``down``; counts the attempts that reached it."""

    def __init__(self) -> None:
        self.down = False
        self.attempts = 0

    def call(self) -> str:
        self.attempts += 1
        if self.down:
            raise redis.ConnectionError("Connection refused")
        return "PONG"


def _policy() -> tuple[BreakerRetry, Clock]:
    clock = Clock()
    return BreakerRetry(CircuitBreaker(2.0, monotonic=clock)), clock


def test_a_failure_is_retried_once_then_the_breaker_opens_and_calls_fail_at_once(
    no_sleep: list[float],
) -> None:
    retry, _ = _policy()
    server, failed = Server(), list[Exception]()
    assert retry.call_with_retry(server.call, failed.append) == "PONG"
    server.down = True
    with pytest.raises(redis.ConnectionError):
        retry.call_with_retry(server.call, failed.append)
    assert server.attempts == 1 + 2  # the call and its one retry
    assert len(no_sleep) == 1
    assert 0 <= no_sleep[0] <= redis_client.RETRY_BACKOFF_CAP_SECONDS
    for _ in range(50):  # an outage: no attempt reaches the server, no wait
        with pytest.raises(RedisUnavailableError):
            retry.call_with_retry(server.call, failed.append)
    assert server.attempts == 3
    assert len(no_sleep) == 1


def test_after_the_open_period_one_probe_goes_and_its_success_closes_the_breaker() -> None:
    retry, clock = _policy()
    server = Server()
    server.down = True
    with pytest.raises(redis.ConnectionError):
        retry.call_with_retry(server.call, lambda e: None)
    clock.now += 2.1
    server.down = False
    assert retry.call_with_retry(server.call, lambda e: None) == "PONG"  # the probe
    assert not retry.breaker.is_open
    assert retry.call_with_retry(server.call, lambda e: None) == "PONG"


def test_a_failure_soon_after_a_trip_is_not_retried() -> None:
    retry, clock = _policy()
    server = Server()
    server.down = True
    with pytest.raises(redis.ConnectionError):
        retry.call_with_retry(server.call, lambda e: None)
    clock.now += 2.1
    server.attempts = 0
    with pytest.raises(redis.ConnectionError):
        retry.call_with_retry(server.call, lambda e: None)  # the probe
    assert server.attempts == 1  # one timeout, not two
    clock.now += 10.0
    server.down = False
    assert retry.call_with_retry(server.call, lambda e: None) == "PONG"  # back: the breaker closes
    server.down, server.attempts = True, 0  # a blip long after the outage gets its retry again
    with pytest.raises(redis.ConnectionError):
        retry.call_with_retry(server.call, lambda e: None)
    assert server.attempts == 2


def test_a_failed_probe_opens_it_again_and_others_fail_fast_while_it_runs() -> None:
    retry, clock = _policy()
    server = Server()
    server.down = True
    with pytest.raises(redis.ConnectionError):
        retry.call_with_retry(server.call, lambda e: None)
    clock.now += 2.1
    seen_during_probe: list[bool] = []

    def probe() -> str:
        try:  # another caller while the probe is out: refused without trying
            retry.breaker.check()
            seen_during_probe.append(False)
        except RedisUnavailableError:
            seen_during_probe.append(True)
        return server.call()

    with pytest.raises(redis.ConnectionError):
        retry.call_with_retry(probe, lambda e: None)
    assert seen_during_probe[0] is True
    with pytest.raises(RedisUnavailableError):
        retry.call_with_retry(server.call, lambda e: None)


def test_nested_retry_loops_do_not_multiply_the_attempts() -> None:
    retry, _ = _policy()
    server = Server()
    server.down = True

    def command() -> str:  # redis-py reconnects inside a command's retry loop, with the same policy
        return retry.call_with_retry(server.call, lambda e: None)

    with pytest.raises(redis.ConnectionError):
        retry.call_with_retry(command, lambda e: None)
    assert server.attempts == 2  # the inner loop tripped the breaker; the outer one stops there


def test_errors_that_are_not_connection_errors_pass_through_untouched() -> None:
    retry, _ = _policy()

    def bad() -> Any:
        raise redis.ResponseError("NOSCRIPT")

    with pytest.raises(redis.ResponseError):
        retry.call_with_retry(bad, lambda e: None)
    assert not retry.breaker.is_open


def test_every_connection_shares_one_breaker_and_real_clients_get_the_policy() -> None:
    options = redis_options()
    retry = options["retry"]
    assert isinstance(retry, BreakerRetry)
    assert copy.deepcopy(retry).breaker is retry.breaker  # redis-py deep-copies the policy per connection
    assert options["socket_connect_timeout"] == redis_client.CONNECT_TIMEOUT_SECONDS <= 0.5
    assert options["socket_timeout"] == redis_client.COMMAND_TIMEOUT_SECONDS <= 1.0
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", **options)  # built lazily: no connection yet
    connection = client.connection_pool.make_connection()
    assert isinstance(connection, redis.Connection)
    assert isinstance(connection.retry, BreakerRetry)
    assert connection.retry.breaker is retry.breaker
    assert connection.retry.get_retries() == redis_client.RETRIES
