"""Shared adapters, built lazily once per process (no I/O at import, so cold starts stay cheap and
tests can override anything). Nothing here imports SQLAlchemy at module level: the webhook uses this
module and must stay lean.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from replyflow.settings import Settings, get_settings

if TYPE_CHECKING:
    import redis
    from sqlalchemy.orm import Session, sessionmaker

    from replyflow.adapters.crypto import TokenCipher
    from replyflow.adapters.redis_client import RedisCache
    from replyflow.ports import QueuePublisher

_overrides: dict[str, object] = {}


def settings() -> Settings:
    override = _overrides.get("settings")
    return override if isinstance(override, Settings) else get_settings()


def override(**components: object) -> None:
    """Replace components (settings, queue_publisher, ...) for the local stack and tests."""
    _overrides.update(components)
    reset_caches()


def component(name: str) -> object | None:
    """An installed override by name (e.g. ``queue_inspector`` from the local stack), or None."""
    return _overrides.get(name)


def clear_overrides() -> None:
    _overrides.clear()
    reset_caches()


def reset_caches() -> None:
    for fn in (writer_sessions, reader_sessions, redis_client, cache, cipher, _sqs_publisher):
        fn.cache_clear()


@lru_cache(maxsize=1)
def writer_sessions() -> sessionmaker[Session]:
    from replyflow.db.engine import session_factory

    s = settings()
    return session_factory(s.database_url, s.database_pool_size, s.database_iam_auth)


@lru_cache(maxsize=1)
def reader_sessions() -> sessionmaker[Session]:
    """The Aurora reader endpoint for read-heavy queries (logs, stats); the writer when unset."""
    from replyflow.db.engine import session_factory

    s = settings()
    return session_factory(s.database_reader_url or s.database_url, s.database_pool_size, s.database_iam_auth)


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    from replyflow.adapters.redis_client import get_redis

    return get_redis(settings().redis_url)


@lru_cache(maxsize=1)
def cache() -> RedisCache:
    from replyflow.adapters.redis_client import RedisCache

    return RedisCache(redis_client())


@lru_cache(maxsize=1)
def cipher() -> TokenCipher:
    from replyflow.adapters.crypto import TokenCipher

    return TokenCipher(settings().token_encryption_key.get_secret_value())


def queue_publisher() -> QueuePublisher:
    override = _overrides.get("queue_publisher")
    if override is not None:
        return override  # type: ignore[return-value]
    return _sqs_publisher()


def aws_client(service: str) -> Any:
    """A boto3 client in the configured region, at the configured endpoint override if any."""
    import boto3

    s = settings()
    return boto3.client(service, region_name=s.aws_region, endpoint_url=s.aws_endpoint(service))


@lru_cache(maxsize=1)
def _sqs_publisher() -> QueuePublisher:
    from replyflow.adapters.queues import SqsPublisher

    s = settings()
    if not s.queue_urls:
        raise RuntimeError("QUEUE_URLS is empty and no local broker is installed")
    return SqsPublisher(aws_client("sqs"), s.queue_urls)
