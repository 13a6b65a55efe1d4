"""Redis clients, built lazily. With no REDIS_URL (the embedded default) one in-process fakeredis server
is shared by every client of the process, so the gateway and the workers see the same data."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import redis


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
    """JSON values under a namespace; a Redis outage degrades to cache misses, never to errors."""

    def __init__(self, client: redis.Redis, namespace: str = "rf") -> None:
        self._redis = client
        self._ns = namespace

    def _key(self, key: str) -> str:
        return f"{self._ns}:{key}"

    def get_json(self, key: str) -> Any | None:
        try:
            raw = self._redis.get(self._key(key))
        except redis.RedisError:
            return None
        return None if raw is None else json.loads(raw)

    def set_json(self, key: str, value: Any, ttl_seconds: int) -> None:
        try:
            self._redis.set(self._key(key), json.dumps(value, default=str), ex=ttl_seconds)
        except redis.RedisError:
            return

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        try:
            self._redis.delete(*(self._key(k) for k in keys))
        except redis.RedisError:
            return
