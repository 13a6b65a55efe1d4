"""The composition roots: typed dependencies per function family, built lazily, fakes as arguments."""

from __future__ import annotations

import threading
import time

import pytest

from replyflow.settings import Settings
from replyflow.wiring.core import Clients, once
from replyflow.wiring.pipeline import GraphOnUse, build_pipeline
from tests.support_pipeline import FakeLimiter, FixedClock, MemoryQueues, ScriptedGraph


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
