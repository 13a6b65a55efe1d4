"""The Redis cache degrades to misses on a Redis error, and says so: a log line and a count each time."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest
import redis

from replyflow.adapters.redis_client import RedisCache
from replyflow.observability import logger, metrics


class DownRedis:
    """Every command fails the way redis-py does when the server is unreachable."""

    def _down(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise redis.ConnectionError("Error 111 connecting to cache.example:6379. Connection refused.")

    get = set = delete = execute = _down

    def pipeline(self, transaction: bool = True) -> DownRedis:
        return self  # queueing works; ``execute`` is where the connection fails


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    handler = Records()
    logger._logger.addHandler(handler)  # the Powertools logger's stdlib logger
    metrics.clear_metrics()
    try:
        yield handler.records
    finally:
        logger._logger.removeHandler(handler)
        metrics.clear_metrics()


def test_a_redis_outage_is_a_miss_that_is_logged_and_counted(records: list[logging.LogRecord]) -> None:
    cache = RedisCache(DownRedis())  # type: ignore[arg-type]

    assert cache.get_json("plans") is None
    cache.set_json("plans", {"free": 1}, 60)
    cache.delete("plans", "templates")

    assert cache.errors == {"get": 1, "set": 1, "delete": 1}
    assert metrics.metric_set["CacheErrors"]["Value"] == [1.0, 1.0, 1.0]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert [getattr(r, "operation", None) for r in warnings] == ["get", "set", "delete"]
    assert {getattr(r, "error", None) for r in warnings} == {"ConnectionError"}
    assert "free" not in " ".join(str(r.__dict__) for r in warnings)  # never the cached value
