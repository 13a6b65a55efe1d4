"""The API's fixed-window counters in Redis (``RateLimiter``), and ``NoRateLimit`` for benches.

One MULTI/EXEC of ``INCR`` + ``EXPIRE NX`` + ``TTL`` per check, so concurrent instances never lose a
count and a key can never be left without an expiry; windows are aligned to the key's first hit.
``hit_and_get`` adds ``GET``s of other keys to the same MULTI/EXEC (the caller's revocation
entries). With Redis unreachable every check passes and the read values are ``None`` (fail open;
``services.rate_limit_api`` explains why).

On a Redis Cluster a MULTI must stay in one slot: the tenant's keys (its two budgets, and its
revocation entries read in the same MULTI) share the hash tag ``{t:<tenant>}``
(``services.rate_limit_api.tenant_tag``); every other rule is a single key. ``hit_all_and_get``
refuses keys of several slots in both modes. Only an outage fails open; any other Redis error
(CROSSSLOT included) is a bug and propagates.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from replyflow.adapters.redis_client import OUTAGE_ERRORS, same_slot
from replyflow.port_values import RateDecision


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisFixedWindowLimiter:
    def __init__(self, client: redis.Redis, namespace: str = "rf") -> None:
        self._redis = client
        self._ns = namespace

    def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        return self.hit_and_get(key, limit, window_seconds, ())[0]

    def hit_and_get(
        self, key: str, limit: int, window_seconds: int, get_keys: Sequence[str]
    ) -> tuple[RateDecision, list[str | None] | None]:
        decisions, values = self.hit_all_and_get([(key, limit, window_seconds)], get_keys)
        return decisions[0], values

    def hit_all_and_get(
        self, rules: Sequence[tuple[str, int, int]], get_keys: Sequence[str]
    ) -> tuple[list[RateDecision], list[str | None] | None]:
        full_keys = [f"{self._ns}:rl:{key}" for key, _limit, _window in rules]
        same_slot([*full_keys, *get_keys])
        try:
            pipe = self._redis.pipeline(transaction=True)
            for full, (_key, _limit, window_seconds) in zip(full_keys, rules, strict=True):
                pipe.incr(full)
                pipe.expire(full, window_seconds, nx=True)
                pipe.ttl(full)
            for get_key in get_keys:  # GETs, not MGET: a cluster pipeline refuses MGET
                pipe.get(get_key)
            results = pipe.execute()
        except OUTAGE_ERRORS:
            return [RateDecision(True, limit, limit, window) for _key, limit, window in rules], None
        decisions = []
        for index, (_key, limit, window_seconds) in enumerate(rules):
            count, ttl = int(results[3 * index]), int(results[3 * index + 2])
            ttl = ttl if ttl > 0 else window_seconds
            decisions.append(RateDecision(count <= limit, limit, max(0, limit - count), ttl))
        values = [_text(v) for v in results[3 * len(rules) :]]
        return decisions, values


class NoRateLimit:
    """Counts nothing (benchmarks and load tests that measure the API, not the limiter). Given a Redis
    client it still reads ``get_keys`` (one round trip), so revocation checks behave as in production."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self._redis = client

    def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        return RateDecision(True, limit, limit, window_seconds)

    def hit_and_get(
        self, key: str, limit: int, window_seconds: int, get_keys: Sequence[str]
    ) -> tuple[RateDecision, list[str | None] | None]:
        decisions, values = self.hit_all_and_get([(key, limit, window_seconds)], get_keys)
        return decisions[0], values

    def hit_all_and_get(
        self, rules: Sequence[tuple[str, int, int]], get_keys: Sequence[str]
    ) -> tuple[list[RateDecision], list[str | None] | None]:
        decisions = [self.hit(*rule) for rule in rules]
        if not get_keys:
            return decisions, []
        if self._redis is None:
            return decisions, None
        try:
            return decisions, [_text(v) for v in self._redis.mget(list(get_keys))]
        except OUTAGE_ERRORS:
            return decisions, None
