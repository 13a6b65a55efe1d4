"""Redis clients, built lazily. With no REDIS_URL (the embedded default) one in-process fakeredis server
is shared by every client of the process, so the gateway and the workers see the same data."""

from __future__ import annotations

import json
import threading
from collections import Counter
from functools import lru_cache
from typing import Any

import redis

from replyflow.observability import MetricUnit, logger, metrics


@lru_cache(maxsize=4)
def get_redis(url: str | None) -> redis.Redis:
    if url is None:
        import fakeredis  # imported only on the local stack: never in a Lambda

        return fakeredis.FakeRedis(server=_fake_server(), decode_responses=False)
    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30)


@lru_cache(maxsize=1)
def _fake_server() -> Any:
    import fakeredis

    return fakeredis.FakeServer()


class RedisCache:
    """JSON values under a namespace; a Redis outage degrades to cache misses, never to errors.

    Every swallowed Redis error is logged (operation and error; never the key's value) and counted:
    ``errors`` by operation in this process, and the ``CacheErrors`` metric, so an outage that the
    callers cannot see still shows on the dashboard."""

    def __init__(self, client: redis.Redis, namespace: str = "rf") -> None:
        self._redis = client
        self._ns = namespace
        self.errors: Counter[str] = Counter()
        self._errors_lock = threading.Lock()

    def _key(self, key: str) -> str:
        return f"{self._ns}:{key}"

    def _swallowed(self, operation: str, error: redis.RedisError) -> None:
        with self._errors_lock:
            self.errors[operation] += 1
            metrics.add_metric(name="CacheErrors", unit=MetricUnit.Count, value=1)
        logger.warning(
            "redis cache error: treated as a miss",
            # redis-py's messages name the host and port, never the AUTH token.
            extra={"operation": operation, "error": type(error).__name__, "detail": str(error)[:200]},
        )

    def get_json(self, key: str) -> Any | None:
        try:
            raw = self._redis.get(self._key(key))
        except redis.RedisError as error:
            self._swallowed("get", error)
            return None
        return None if raw is None else json.loads(raw)

    def set_json(self, key: str, value: Any, ttl_seconds: int) -> None:
        try:
            self._redis.set(self._key(key), json.dumps(value, default=str), ex=ttl_seconds)
        except redis.RedisError as error:
            self._swallowed("set", error)

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        try:
            self._redis.delete(*(self._key(k) for k in keys))
        except redis.RedisError as error:
            self._swallowed("delete", error)
