"""The composition roots: typed dependencies per function family, built lazily, fakes as arguments."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from replyflow.services.api_key_auth import api_key_cache_key, authenticate_api_key
from replyflow.services.tokens import sha256_hex
from replyflow.settings import Settings
from replyflow.wiring.core import Clients, once
from replyflow.wiring.pipeline import GraphOnUse, build_pipeline
from tests.support_pipeline import DictCache, FakeLimiter, FixedClock, MemoryQueues, ScriptedGraph


class _Counted:
    def __init__(self) -> None:
        self.builds = 0

    @once
    def value(self) -> object:
        self.builds += 1
        time.sleep(0.01)  # wide enough for every thread to race into the first read
        return object()


def test_a_lazy_attribute_is_built_once_across_threads() -> None:
    counted = _Counted()
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(counted.value)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counted.builds == 1
    assert len({id(value) for value in seen}) == 1


def test_the_pipeline_uses_the_fakes_it_is_given_and_builds_nothing_it_is_not_asked_for() -> None:
    queues, graph, limiter = MemoryQueues(), ScriptedGraph(), FakeLimiter()
    clock = FixedClock(None)
    deps = build_pipeline(
        Settings(environment="test"), publisher=queues, graph=graph, limiter=limiter, clock=clock
    )
    assert (deps.publisher, deps.graph, deps.limiter, deps.clock) == (queues, graph, limiter, clock)
    assert "sender" not in vars(deps)
    assert "processor" not in vars(deps)
    assert deps.sender is deps.sender  # built on first read, then the same service


def test_left_out_adapters_are_the_real_ones_unbuilt() -> None:
    settings = Settings(environment="test")
    deps = build_pipeline(settings)
    assert isinstance(deps.graph, GraphOnUse)
    assert isinstance(deps.clients, Clients)
    assert deps.clients.settings is settings
    assert "writer_sessions" not in vars(deps.clients)
    with pytest.raises(RuntimeError, match="QUEUE_URLS is empty"):
        deps.publisher.publish("events-high", ["{}"])  # resolved at the first publish, not before


def test_api_key_checks_get_their_sessions_and_cache_as_arguments() -> None:
    """The service never reaches into the wiring; a warm key (cached) never builds an engine."""
    prefix, secret = "abcdefghijkl", "s" * 40
    cache = DictCache()
    cache.set_json(
        api_key_cache_key(prefix),
        {"id": "k1", "tenant_id": "t1", "role": "member", "key_hash": sha256_hex(secret), "plan_code": "pro"},
        60,
    )

    def no_database() -> Any:
        raise AssertionError("a cached key must not open a session")

    principal = authenticate_api_key(f"rfk_{prefix}_{secret}", cache, no_database)
    assert principal is not None
    assert (principal.tenant_id, principal.principal_id, principal.principal_type) == ("t1", "k1", "api_key")
    assert authenticate_api_key(f"rfk_{prefix}_{'x' * 40}", cache, no_database) is None
