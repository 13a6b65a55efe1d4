"""Shared adapters, built lazily (no I/O at import, so cold starts stay cheap). Nothing here imports
SQLAlchemy at module level: the webhook uses this module and must stay lean.

:class:`Clients` holds the clients every function family shares (engines, Redis, the token cipher,
boto3 clients) for one ``Settings``, each built on first read; the families' composition roots
(``PipelineDeps``, ``ApiDeps``, ``JobsDeps``, ...) take one; tests and the local stack pass their
fakes to the families' ``build_*`` functions, never through a registry. :class:`once` is the lazy
attribute they are built with.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

if TYPE_CHECKING:
    import redis
    from sqlalchemy.orm import Session, sessionmaker

    from replyflow.adapters.crypto import TokenCipher
    from replyflow.adapters.redis_client import RedisCache
    from replyflow.adapters.secrets import AppSecrets, SecretValues
    from replyflow.db.shards import ShardRouter
    from replyflow.ports import QueuePublisher
    from replyflow.redacted import Secret
    from replyflow.settings import Settings
    from replyflow.settings_view import ApiSettings, WebhookSettings

_Owner = TypeVar("_Owner")
_Value = TypeVar("_Value")


class once(Generic[_Owner, _Value]):  # noqa: N801 - reads like the property decorator it replaces
    """An attribute computed on first read, exactly once per instance, under a lock.

    Like ``functools.cached_property``, but safe when worker threads share a composition root (two
    threads never build two engines), and usable on frozen dataclasses (it writes the instance
    ``__dict__``, not through ``__setattr__``)."""

    def __init__(self, build: Callable[[_Owner], _Value]) -> None:
        self._build = build
        self._name = build.__name__
        self._lock = threading.RLock()
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type[_Owner], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type[_Owner]) -> once[_Owner, _Value]: ...

    @overload
    def __get__(self, instance: _Owner, owner: type[_Owner]) -> _Value: ...

    def __get__(self, instance: _Owner | None, owner: type[_Owner]) -> once[_Owner, _Value] | _Value:
        if instance is None:
            return self
        values = instance.__dict__
        if self._name not in values:
            with self._lock:
                if self._name not in values:
                    values[self._name] = self._build(instance)
        value: _Value = values[self._name]
        return value


class Clients:
    """The clients shared by every family, for one ``Settings``: each built on first read (no I/O
    and no heavy import before). Engines and Redis clients are cached per URL underneath, so two
    ``Clients`` of the same settings share their pools.

    Given a ``view`` (``ApiSettings``), the settings may be a callable that builds them: Redis, the
    Secrets Manager secrets and the AWS clients read the view, and the full settings are built at
    their first read (a database, or the local stack's secrets)."""

    def __init__(
        self,
        settings: Settings | Callable[[], Settings],
        *,
        app_secrets: AppSecrets | None = None,
        view: ApiSettings | None = None,
    ) -> None:
        """``app_secrets`` replaces the settings' secrets provider (tests of a rotation)."""
        self._settings_source = settings
        self._view = view
        if not callable(settings):
            self.__dict__["settings"] = settings  # what the ``once`` attribute would hold
        elif view is None:
            raise TypeError("settings to build on first read need the view the clients read meanwhile")
        if app_secrets is not None:
            self.__dict__["app_secrets"] = app_secrets

    @once
    def settings(self) -> Settings:
        source = self._settings_source
        return source() if callable(source) else source

    @property
    def _reads(self) -> Settings | ApiSettings:
        """Where Redis, the secrets' ARNs and the AWS endpoints are read: the view when there is one."""
        return self._view if self._view is not None else self.settings

    @once
    def writer_sessions(self) -> sessionmaker[Session]:
        """With shards, a ``ShardRouter`` (called like a sessionmaker: the bound tenant's shard)."""
        from replyflow.db.engine import session_factory

        s = self.settings
        if self.shard_router is not None:
            return self.shard_router  # type: ignore[return-value]  # called like one
        return session_factory(s.database_url, s.database_pool_size, s.database_iam_auth)

    def writer_sessions_for(self, concurrency: int) -> sessionmaker[Session]:
        """The writer with at least ``concurrency`` pooled connections (one per thread of a batch);
        the same factory as ``writer_sessions`` when the settings' pool is already that large."""
        s = self.settings
        if s.database_pool_size >= concurrency:
            return self.writer_sessions
        from replyflow.db.engine import session_factory

        return session_factory(s.database_url, concurrency, s.database_iam_auth)

    @once
    def reader_sessions(self) -> sessionmaker[Session]:
        """The Aurora reader endpoint for read-heavy queries (logs, stats); the writer when unset."""
        from replyflow.db.engine import session_factory

        s = self.settings
        if self.shard_reader_router is not None:
            return self.shard_reader_router  # type: ignore[return-value]
        url = s.database_reader_url or s.database_url
        return session_factory(url, s.database_pool_size, s.database_iam_auth)

    @once
    def shard_router(self) -> ShardRouter | None:
        """The writers' router over the directory and the shards; None with one shard."""
        return _router(self.settings, self.settings.database_url, {}, None)

    @once
    def shard_reader_router(self) -> ShardRouter | None:
        s = self.settings
        readers = dict(s.database_shard_reader_urls)
        for name, url in s.database_shard_urls.items():
            if url == s.database_url and s.database_reader_url and name not in readers:
                readers[name] = s.database_reader_url
        return _router(s, s.database_reader_url or s.database_url, readers, self.shard_router)

    def shard_scopes(self) -> list[AbstractContextManager[None]]:
        """One context per shard, in which sessions open on that shard (one, doing nothing, without
        shards): what must reach every tenant's data whatever its shard (Meta's deletion callbacks)."""
        router = self.shard_router
        if router is None:
            return [nullcontext()]
        from replyflow.db.shards import on_shard

        return [on_shard(name) for name in router.names]

    @once
    def app_secrets(self) -> AppSecrets:
        """The app's secrets: Secrets Manager at run time in AWS, the settings locally."""
        from replyflow.adapters.secrets import app_secrets_for, secrets_manager_secrets

        if self._view is not None and self._view.secrets_from_secrets_manager:
            return secrets_manager_secrets(self._view, lambda: self.secretsmanager)
        return app_secrets_for(self.settings, lambda: self.secretsmanager)

    @once
    def secretsmanager(self) -> Any:
        """One Secrets Manager client for every secret the function reads at run time."""
        return self.aws_client("secretsmanager")

    @once
    def redis(self) -> redis.Redis:
        from replyflow.adapters.redis_client import get_redis

        s = self._reads
        # The secrets are read for a Redis AUTH token only (AWS): the local stack's is in its URL.
        password = redis_password(s, self.app_secrets) if s.redis_auth_secret_arn is not None else None
        return get_redis(s.redis_url, password)

    @once
    def cache(self) -> RedisCache:
        from replyflow.adapters.redis_client import RedisCache

        return RedisCache(self.redis)

    @once
    def cipher(self) -> TokenCipher:
        from replyflow.adapters.crypto import RotatingCipher

        return RotatingCipher(self.app_secrets)

    def aws_client(self, service: str) -> Any:
        return aws_client(self._reads, service)

    @once
    def sqs(self) -> Any:
        return self.aws_client("sqs")

    @once
    def sqs_publisher(self) -> QueuePublisher:
        """SQS over ``QUEUE_URLS``, resolved at the first publish: boto3 is not imported before, and a
        path that publishes nothing runs without queue URLs."""
        return PublisherOnUse(self._sqs_publisher_now)

    def _sqs_publisher_now(self) -> QueuePublisher:
        return sqs_publisher(self.settings.queue_urls, lambda: self.sqs)


def aws_client(s: Settings | WebhookSettings | ApiSettings, service: str) -> Any:
    """A boto3 client in the configured region, at the configured endpoint override if any."""
    import boto3

    return boto3.client(service, region_name=s.aws_region, endpoint_url=s.aws_endpoint(service))


def sqs_publisher(queue_urls: dict[str, str], sqs: Callable[[], Any]) -> QueuePublisher:
    """SQS over ``queue_urls`` (``QUEUE_URLS``), with the client ``sqs()`` gives."""
    from replyflow.adapters.queues import SqsPublisher

    if not queue_urls:
        raise RuntimeError("QUEUE_URLS is empty and no local broker is installed")
    return SqsPublisher(sqs(), queue_urls)


class PublisherOnUse:
    """A queue publisher built by ``build`` at the first publish, once."""

    def __init__(self, build: Callable[[], QueuePublisher]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._publisher: QueuePublisher | None = None

    def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None:
        with self._lock:
            if self._publisher is None:
                self._publisher = self._build()
            publisher = self._publisher
        publisher.publish(queue, bodies, delay_seconds=delay_seconds)


def sharded(s: Settings) -> bool:
    """More than one shard, or one that is not the directory's database."""
    urls = s.database_shard_urls
    return len(urls) > 1 or (len(urls) == 1 and next(iter(urls.values())) != s.database_url)


def _router(
    s: Settings, directory_url: str, readers: dict[str, str], placements: ShardRouter | None
) -> ShardRouter | None:
    """``placements``: the router whose directory places tenants (the readers' is the writers')."""
    if not sharded(s):
        return None
    if any(url.startswith("sqlite") for url in (s.database_url, *s.database_shard_urls.values())):
        raise ValueError(
            "tenant shards need MySQL (DATABASE_URL and DATABASE_SHARD_URLS); SQLite has one shard"
        )
    from replyflow.db.engine import get_engine
    from replyflow.db.shards import ShardRouter

    def engine(url: str) -> Any:
        return get_engine(url, s.database_pool_size, s.database_iam_auth)

    shards = {name: engine(readers.get(name, url)) for name, url in s.database_shard_urls.items()}
    default = next((n for n, u in s.database_shard_urls.items() if u == s.database_url), min(shards))
    return ShardRouter(engine(directory_url), shards, default=default, placements=placements)


class ViewRoot:
    """A Lambda root over a pydantic-free settings view (the webhook's, the sender's): its app
    secrets, Redis and the cache, each built at its first read. The secrets are Secrets Manager's when
    the view names a secret (AWS), else the environment's (``_environment_secrets``: the webhook's
    values, and the token keys where ``_token_keys`` gives them)."""

    settings: WebhookSettings

    def _environment_secrets(self) -> SecretValues:
        """The webhook's values (its app secrets, its verify token) and ``_token_keys``; no JWT keys."""
        from replyflow.adapters.secrets import SecretValues

        s = self.settings
        key, previous = self._token_keys()
        return SecretValues(
            instagram_app_secret=s.instagram_app_secret,
            meta_app_secret=s.meta_app_secret,
            instagram_verify_token=s.instagram_verify_token,
            token_encryption_key=key,
            token_encryption_previous_keys=previous,
            jwt_signing_keys={},
            jwt_active_kid="",
        )

    def _token_keys(self) -> tuple[Secret, tuple[Secret, ...]]:
        """The token keys, and the previous ones: none for a function that decrypts no token."""
        from replyflow.redacted import Secret

        return Secret(""), ()

    @once
    def app_secrets(self) -> AppSecrets:
        from replyflow.adapters.secrets import AppSecrets, secrets_manager_secrets

        s = self.settings
        if s.secrets_from_secrets_manager:
            return secrets_manager_secrets(s, lambda: aws_client(s, "secretsmanager"))
        return AppSecrets.fixed(self._environment_secrets())

    @once
    def redis(self) -> redis.Redis:
        from replyflow.adapters.redis_client import get_redis

        return get_redis(self.settings.redis_url, redis_password(self.settings, self.app_secrets))

    @once
    def cache(self) -> RedisCache:
        from replyflow.adapters.redis_client import RedisCache

        return RedisCache(self.redis)


def redis_password(s: Settings | WebhookSettings | ApiSettings, secrets: AppSecrets) -> str | None:
    """The Redis AUTH token from its secret (AWS); locally any password stays in ``REDIS_URL``."""
    if s.redis_url is None or s.redis_auth_secret_arn is None:
        return None
    token = secrets.get().redis_auth_token
    return token.get_secret_value() if token is not None else None
