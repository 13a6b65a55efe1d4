"""Redis clients, built lazily, with one explicit failure policy. With no REDIS_URL (the embedded
default) one in-process fakeredis server is shared by every client of the process, so the gateway and
the workers see the same data.

The failure policy (every caller degrades on a ``redis.RedisError``: the cache to a miss, the send
limiter to a deferral, the API limiter to "allowed", so Redis must fail *fast*, not slowly):

- short timeouts: ``CONNECT_TIMEOUT_SECONDS`` to connect and ``COMMAND_TIMEOUT_SECONDS`` per reply (an
  ElastiCache node in the same VPC answers in about a millisecond; the limiter's scripts are
  microseconds), instead of seconds;
- one retry after a short jittered pause (``RETRIES``, ``RETRY_BACKOFF_*``), which rides over a
  dropped connection or a failover's first refused connect;
- a circuit breaker shared by every connection of the process: once a call has failed after its retry,
  calls fail at once (:class:`RedisUnavailableError`) for ``BREAKER_OPEN_SECONDS``; then one call
  probes, and its success closes the breaker. A failure soon after a trip (within two open periods:
  a probe, or a call right after a connect succeeded on a node that then hangs) is not retried, so a
  probe costs one timeout. During an outage a webhook pays no Redis timeout at all, only the
  database read of its route; one call per open period pays the probe.

Cluster mode: a ``redis+cluster://`` (or ``rediss+cluster://``) URL builds a ``RedisCluster`` (redis-py's
cluster client: it follows MOVED/ASK and keeps the slot map) over the same timeouts; its one retry is
the cluster client's own (it refreshes the slot map between tries) and the breaker sits in front of
every command (:class:`BreakerRedisCluster`). Every key that a MULTI, a multi-key command or a Lua
script touches together shares a hash tag (``{t:<tenant>}`` or ``{<account>}``); :func:`same_slot`
checks it in both modes, so a standalone test catches a key that would be CROSSSLOT on a cluster.

Only an outage (:data:`OUTAGE_ERRORS`: no connection, a timeout, a cluster that is down, reconfiguring
or failing over) is degraded by the callers; any other Redis error (CROSSSLOT, WRONGTYPE, a script
error) is a bug and propagates.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, TypeVar, cast

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.driver_info import DriverInfo
from redis.retry import Retry

from replyflow.errors import ReplyflowError
from replyflow.observability import MetricUnit, logger, metrics

CONNECT_TIMEOUT_SECONDS = 0.25
COMMAND_TIMEOUT_SECONDS = 0.5
RETRIES = 1
RETRY_BACKOFF_BASE_SECONDS = 0.02
RETRY_BACKOFF_CAP_SECONDS = 0.05
BREAKER_OPEN_SECONDS = 2.0
_RETRIED_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# What the callers degrade on. ReadOnlyError: a write reached a replica mid-failover; ClusterDownError
# (MasterDownError too) and TryAgainError: a cluster reconfiguring; SlotNotCoveredError: no node serves
# the slot yet.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.SlotNotCoveredError,
)

T = TypeVar("T")


class RedisUnavailableError(ReplyflowError, redis.ConnectionError):
    """Refused without trying: the breaker is open after a recent failure."""

    code = "redis_unavailable"
    status = 503


class CircuitBreaker:
    """Closed, open until a time, then half-open: one caller probes while the others still fail fast.

    Shared by the deep copies redis-py makes of the retry policy for each connection."""

    def __init__(self, open_seconds: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._open_seconds = open_seconds
        self._monotonic = monotonic
        self._open_until = 0.0
        self._last_trip = -float("inf")
        self._lock = threading.Lock()
        self.depth = threading.local()  # how deep this thread is in nested retry loops

    def __deepcopy__(self, memo: dict[int, Any]) -> CircuitBreaker:
        return self

    @property
    def is_open(self) -> bool:
        return self._open_until > 0.0

    def check(self) -> None:
        if self._open_until == 0.0:
            return
        now = self._monotonic()
        with self._lock:
            if self._open_until == 0.0:
                return
            if now < self._open_until:
                raise RedisUnavailableError("Redis is unavailable (circuit open after a recent failure)")
            self._open_until = now + self._open_seconds  # this caller is the probe

    def trip(self) -> None:
        with self._lock:
            self._last_trip = self._monotonic()
            self._open_until = self._last_trip + self._open_seconds

    def recovering(self) -> bool:
        """Tripped recently: a failure now is the outage going on, not a blip worth a retry."""
        return self._monotonic() - self._last_trip < 2 * self._open_seconds

    def close(self) -> None:
        if self._open_until != 0.0:
            with self._lock:
                self._open_until = 0.0


class BreakerRetry(Retry):
    """redis-py's retry loop with the breaker in front. redis-py nests retries (a command's retry wraps
    the reconnect's); only the outermost call of a thread consults the breaker, so a probe is not
    refused by its own reconnect, and a tripped breaker ends the outer loop too."""

    def __init__(self, breaker: CircuitBreaker, *, retries: int = RETRIES) -> None:
        super().__init__(
            ExponentialWithJitterBackoff(cap=RETRY_BACKOFF_CAP_SECONDS, base=RETRY_BACKOFF_BASE_SECONDS),
            retries,
            _RETRIED_ERRORS,
        )
        self.breaker = breaker

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        local = self.breaker.depth
        depth = getattr(local, "value", 0)
        local.value = depth + 1
        try:
            return self._loop(do, fail, is_retryable, with_failure_count, outermost=depth == 0)
        finally:
            local.value = depth

    def _loop(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None,
        with_failure_count: bool,
        *,
        outermost: bool,
    ) -> T:
        self._backoff.reset()
        failures = 0
        while True:
            if outermost:
                self.breaker.check()
            try:
                result = do()
            except self._supported_errors as error:
                if is_retryable is not None and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                if failures > self._retries or self.breaker.recovering():
                    self.breaker.trip()
                    raise
                time.sleep(self._backoff.compute(failures))
                continue
            if outermost:
                self.breaker.close()
            return result


def redis_options(breaker: CircuitBreaker | None = None) -> dict[str, Any]:
    """The keyword arguments of every real client (tests build clients with the same policy)."""
    return {
        "socket_timeout": COMMAND_TIMEOUT_SECONDS,
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "retry": BreakerRetry(breaker or CircuitBreaker(BREAKER_OPEN_SECONDS)),
        "retry_on_error": list(_RETRIED_ERRORS),
        "health_check_interval": 30,
        # CLIENT SETINFO's LIB-VER, the installed redis-py's own: given, so a new connection does not
        # look it up in the package metadata (importlib.metadata, a few ms of a cold start).
        "driver_info": DriverInfo(lib_version=redis.__version__),
    }


class CrossSlotKeysError(ReplyflowError):
    """Keys meant for one MULTI or script hash to different slots: a key-naming bug, never input."""

    code = "internal_error"
    status = 500


def key_slot(key: str) -> int:
    from redis.crc import key_slot as crc_slot

    return int(crc_slot(key.encode()))


def same_slot(keys: Sequence[str]) -> None:
    """Raises :class:`CrossSlotKeysError` unless every key hashes to one cluster slot."""
    slots = {key_slot(key) for key in keys}
    if len(slots) > 1:
        raise CrossSlotKeysError(f"keys of one atomic operation span {len(slots)} slots: {list(keys)}")


def by_slot(keys: Sequence[str]) -> list[list[str]]:
    """The keys grouped by cluster slot, in first-seen order (one multi-key command per group)."""
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(key_slot(key), []).append(key)
    return list(groups.values())


def cluster_url(url: str) -> str | None:
    """``url`` with its ``+cluster`` scheme suffix removed, or None when it names a standalone Redis."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    return f"{plain}{sep}{rest}" if plain and sep else None


class BreakerRedisCluster(redis.RedisCluster):
    """The cluster client with the process's breaker in front of every command: open, it refuses at
    once; a command that fails on an outage after the client's own retry trips it."""

    def __init__(self, *args: Any, breaker: CircuitBreaker | None = None, **kwargs: Any) -> None:
        self.breaker = breaker or CircuitBreaker(BREAKER_OPEN_SECONDS)
        super().__init__(*args, **kwargs)

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        self.breaker.check()
        try:
            result = super().execute_command(*args, **kwargs)
        except OUTAGE_ERRORS:
            self.breaker.trip()
            raise
        self.breaker.close()
        return result


def _cluster_client(url: str, password: str | None) -> redis.RedisCluster:
    options = redis_options()
    options.pop("retry")
    options.pop("retry_on_error")
    if password is not None:
        options["password"] = password
    return BreakerRedisCluster.from_url(
        url,
        breaker=CircuitBreaker(BREAKER_OPEN_SECONDS),
        retry=Retry(
            ExponentialWithJitterBackoff(cap=RETRY_BACKOFF_CAP_SECONDS, base=RETRY_BACKOFF_BASE_SECONDS),
            RETRIES,
        ),
        **options,
    )


@lru_cache(maxsize=4)
def get_redis(url: str | None, password: str | None = None) -> redis.Redis:
    """A client of ``url``; ``password`` (the AUTH token read from its secret) wins over one in the URL.

    A ``redis+cluster://`` / ``rediss+cluster://`` URL gives a cluster client (its type is
    ``RedisCluster``, which serves the same commands, pipelines and scripts the adapters use)."""
    if url is None:
        import fakeredis  # imported only on the local stack: never in a Lambda

        return fakeredis.FakeRedis(server=_fake_server(), decode_responses=False)
    plain = cluster_url(url)
    if plain is not None:
        return cast(redis.Redis, _cluster_client(plain, password))
    options = redis_options()
    if password is not None:
        options["password"] = password
    return redis.Redis.from_url(url, **options)


@lru_cache(maxsize=1)
def _fake_server() -> Any:
    import fakeredis

    return fakeredis.FakeServer()


class RedisCache:
    """JSON values under a namespace; a Redis outage degrades to cache misses, never to errors (any
    other Redis error, CROSSSLOT included, is a bug and propagates).

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

    def _swallowed(self, operation: str, error: Exception) -> None:
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
        except OUTAGE_ERRORS as error:
            self._swallowed("get", error)
            return None
        return None if raw is None else json.loads(raw)

    def set_json(self, key: str, value: Any, ttl_seconds: int) -> None:
        try:
            self._redis.set(self._key(key), json.dumps(value, default=str), ex=ttl_seconds)
        except OUTAGE_ERRORS as error:
            self._swallowed("set", error)

    def delete(self, *keys: str) -> None:
        """Never one ``DEL`` across slots (invalidations span a tenant's slot and its accounts'
        routing slots): on a cluster, a pipeline of single-key ``DEL``s (a cluster pipeline refuses a
        multi-key one; it sends each node its keys in one round trip); on a standalone Redis one
        ``DEL`` per slot in one pipeline, one round trip."""
        if not keys:
            return
        full = [self._key(k) for k in keys]
        try:
            pipe = self._redis.pipeline(transaction=False)
            if isinstance(self._redis, redis.RedisCluster):
                for key in full:
                    pipe.delete(key)
            else:
                for group in by_slot(full):
                    pipe.delete(*group)
            pipe.execute()
        except OUTAGE_ERRORS as error:
            self._swallowed("delete", error)
