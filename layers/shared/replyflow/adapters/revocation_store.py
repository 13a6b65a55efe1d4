"""The revocation entries of ``services.revocation`` in Redis (``RevocationStore``): a write that
fails raises ``RevocationUnavailableError`` so the revoking transaction rolls back."""

from __future__ import annotations

import redis

from replyflow.adapters.redis_client import OUTAGE_ERRORS
from replyflow.port_values import RevocationUnavailableError


class RedisRevocationStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def put(self, key: str, value: str, ttl_seconds: int) -> None:
        try:
            self._redis.set(key, value, ex=max(1, ttl_seconds))
        except OUTAGE_ERRORS as error:
            raise RevocationUnavailableError(
                "the revocation could not be recorded (cache unavailable); nothing was changed, try again"
            ) from error

    def put_if_absent(self, key: str, value: str) -> None:
        try:
            self._redis.set(key, value, nx=True)
        except OUTAGE_ERRORS:
            return
