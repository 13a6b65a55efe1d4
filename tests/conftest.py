"""Shared fixtures for every tier.

- ``sqlite_url``: a migrated SQLite file per test (unit tier may use it: no sockets).
- ``mysql_url``: a database of its own on the real MariaDB, created and migrated once per session and
  dropped at the end. With CI=true a missing MariaDB or Redis fails the run instead of skipping.
- ``redis_server`` (session) / ``redis_url``: a redis-server of the session's own on a free port
  (``tests/private_redis.py``), or ``TEST_REDIS_URL`` when set; ``redis_namespace``: a key namespace
  unique to the test. Nothing here connects to the machine's Redis on 6379, and nothing flushes.
- ``redis_cluster`` (session): a Redis Cluster of three masters of the session's own on free ports
  (``private_redis_cluster``), as a ``redis+cluster://`` URL; ``redis_any_url``: parametrized over
  the standalone server and the cluster. A module runs its Redis tests on both by overriding
  ``redis_url`` with it.

What ``make test`` touches outside its temporary directories: on the MariaDB at ``TEST_MYSQL_URL``
(default ``root@127.0.0.1:3306``), databases named ``rf_*_<8 hex>`` that it creates and drops; a
``redis-server`` process of its own. The README says the same.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "events"
# Instagram's webhook bodies, one per event kind we handle (docs/instagram.md explains each).
REFERENCE_EVENTS_DIR = EVENTS_DIR / "instagram"
MYSQL_ADMIN_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
# Unset: the session starts its own redis-server (never the machine's Redis on 6379).
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"
# botocore must never look for credentials on the network (the EC2 metadata address): the unit tier
# blocks sockets, and no tier has an AWS account. Clients that need credentials get moto's.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def service_missing(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); start it (see README) or run `bash .ci/run`"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def load_event(name: str) -> dict[str, Any]:
    """A payload from events/ or events/instagram/, by file name."""
    for folder in (EVENTS_DIR, REFERENCE_EVENTS_DIR):
        path = folder / name
        if path.exists():
            return json.loads(path.read_text())
    raise FileNotFoundError(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from replyflow.db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'replyflow.db'}"
    upgrade(url)
    return url


@contextmanager
def fresh_mysql_database(prefix: str = "rf_test") -> Iterator[str]:
    """A migrated database of its own on the real MariaDB, dropped afterwards."""
    import sqlalchemy as sa

    from replyflow.db.migrate import upgrade

    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(MYSQL_ADMIN_URL, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    except sa.exc.OperationalError as error:
        service_missing("MariaDB", error)
    url = MYSQL_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}?charset=utf8mb4"
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    with fresh_mysql_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The URL of a Redis only this session uses: its own redis-server, or ``TEST_REDIS_URL``."""
    import redis

    from tests.private_redis import RedisServerUnavailableError, private_redis_server

    if REDIS_TEST_URL:
        try:
            redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1).ping()
        except redis.RedisError as error:
            service_missing("Redis", error)
        yield REDIS_TEST_URL
        return
    with ExitStack() as stack:
        try:
            url = stack.enter_context(private_redis_server())
        except RedisServerUnavailableError as error:
            service_missing("redis-server", error)
        yield url


@pytest.fixture
def redis_url(redis_server: str) -> str:
    return redis_server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[str]:
    """The URL of a Redis Cluster (three masters) only this session uses."""
    from tests.private_redis import RedisServerUnavailableError, private_redis_cluster

    with ExitStack() as stack:
        try:
            url = stack.enter_context(private_redis_cluster())
        except RedisServerUnavailableError as error:
            service_missing("a Redis Cluster", error)
        yield url


@pytest.fixture(params=["standalone", "cluster"])
def redis_any_url(request: pytest.FixtureRequest) -> str:
    fixture = "redis_server" if request.param == "standalone" else "redis_cluster"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def redis_namespace() -> str:
    return f"rftest:{secrets.token_hex(4)}"
