"""The suite touches only what it owns: its own redis-server, never the machine's Redis."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import redis

from tests.conftest import REDIS_TEST_URL
from tests.private_redis import private_redis_server


@pytest.mark.skipif(REDIS_TEST_URL is not None, reason="TEST_REDIS_URL chooses the Redis")
def test_the_redis_fixture_is_a_server_of_the_sessions_own(redis_url: str) -> None:
    port = urlsplit(redis_url).port
    assert port is not None
    assert port != 6379
    client = redis.Redis.from_url(redis_url)
    try:
        directory = str(client.config_get("dir")["dir"])
        persistence = str(client.config_get("save")["save"])
    finally:
        client.close()
    assert "rf-test-redis-" in directory
    assert persistence == ""


def test_a_private_redis_server_is_gone_after_use() -> None:
    with private_redis_server() as url:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        assert client.ping()
        client.set("k", "v")
        client.close()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
