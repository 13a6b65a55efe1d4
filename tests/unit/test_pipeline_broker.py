"""The pipeline through the local broker on a fake clock: webhook -> events queue -> processor ->
sends queue -> sender, with the queues, event sources, visibility timeouts, ``maxReceiveCount`` and
DLQs of template.yaml. Retries, deferrals and poison messages play out in queue time (the clock is
advanced to the next delayed or timed-out message), so nothing sleeps. SQLite, fakeredis, a scripted
Graph client: no sockets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from local.template import default_template_path, parse_template
from processor import handler as processor
from replyflow.adapters.graph_client import GraphError
from replyflow.clock import utcnow
from replyflow.db.engine import session_scope
from replyflow.db.models import OutboundMessage
from replyflow.services import cache_keys
from replyflow.services.demo_seed import seed_demo
from replyflow.settings import Settings
from replyflow.wiring.pipeline import PipelineDeps, build_pipeline
from sender import handler as sender
from tests.conftest import load_event
from tests.support_pipeline import FakeLimiter, LocalQueues, ScriptedGraph, lambda_context
from webhook import handler as webhook

POISON = "{this is not an event"


@dataclass
class World:
    queues: LocalQueues
    graph: ScriptedGraph
    limiter: FakeLimiter
    deps: PipelineDeps
    demo: Any

    def webhook(self, event: dict[str, Any]) -> dict[str, Any]:
        return webhook.make_handler(lambda: self.deps)(event, lambda_context("WebhookFunction"))

    def statuses(self) -> list[str]:
        with session_scope(self.deps.clients.writer_sessions) as session:
            rows = session.query(OutboundMessage).filter_by(tenant_id=self.demo.tenant_id).all()
            return sorted(row.status for row in rows)


def _world(sqlite_url: str, queues: LocalQueues, graph: ScriptedGraph | None = None) -> Iterator[World]:
    graph = graph or ScriptedGraph()
    limiter = FakeLimiter()
    deps = build_pipeline(
        Settings(environment="test", database_url=sqlite_url),
        publisher=queues,
        visibility=queues.visibility,
        graph=graph,
        limiter=limiter,
    )
    queues.bind("processor", processor.make_handler(lambda: deps))
    queues.bind("sender", sender.make_handler(lambda: deps))
    cache = deps.clients.cache
    with session_scope(deps.clients.writer_sessions) as session:
        demo = seed_demo(session, deps.clients.cipher, "sandbox-token", now=utcnow())
    cache.delete(cache_keys.account_route_key(demo.ig_user_id))
    try:
        yield World(queues, graph, limiter, deps, demo)
    finally:
        cache.delete(
            cache_keys.account_route_key(demo.ig_user_id),
            cache_keys.automations_key(demo.tenant_id, demo.account_id),
        )


@pytest.fixture
def world(sqlite_url: str) -> Iterator[World]:
    yield from _world(sqlite_url, LocalQueues())


def test_a_sample_comment_goes_from_the_webhook_to_one_graph_call_through_the_templates_queues(
    world: World,
) -> None:
    assert world.webhook(load_event("webhook_post_comment.json"))["statusCode"] == 200
    assert world.queues.pending("events-default") == 1  # the demo tenant is on the pro plan
    stats = world.queues.drain()
    assert len(world.graph.calls) == 1
    assert world.statuses() == ["sent"]
    assert (stats.failed, world.queues.pending()) == (0, 0)
    assert world.queues.dead_letters("events-default") == []
    assert world.queues.dead_letters("sends-default") == []


def test_a_poison_event_reaches_the_dlq_after_the_templates_max_receive_count(world: World) -> None:
    spec = world.queues.queue("events-default")
    assert spec.max_receive_count is not None
    assert spec.dlq == "events-default-dlq"
    world.queues.publish("events-default", [POISON])
    stats = world.queues.drain()
    (dead,) = world.queues.dead_letters("events-default")
    assert (dead["body"], dead["receiveCount"], dead["queue"]) == (POISON, spec.max_receive_count, spec.dlq)
    assert stats.delivered == stats.failed == spec.max_receive_count
    # Each failure came back after the worker's short backoff, not the 180 s visibility timeout.
    assert 0 < stats.waited_seconds < (spec.max_receive_count - 1) * spec.visibility_timeout


def test_only_the_templates_max_receive_count_decides_when_a_poison_message_is_dead_lettered(
    sqlite_url: str,
) -> None:
    text = default_template_path().read_text()
    assert "maxReceiveCount: 5" in text
    edited = parse_template(text.replace("maxReceiveCount: 5", "maxReceiveCount: 2"))
    for template, expected in ((parse_template(text), 5), (edited, 2)):
        queues = LocalQueues(template)
        for world in _world(sqlite_url, queues):
            assert queues.queue("events-default").max_receive_count == expected
            world.queues.publish("events-default", [POISON])
            stats = world.queues.drain()
            (dead,) = world.queues.dead_letters("events-default")
            assert dead["receiveCount"] == stats.delivered == expected


def test_a_deferral_waits_out_its_delay_seconds_in_queue_time(world: World) -> None:
    world.limiter.budget, world.limiter.delay = 0, 42.2  # no slot: the sender defers the job
    assert world.webhook(load_event("webhook_post_comment.json"))["statusCode"] == 200
    # One poll of every event source: the processor queues the send job, then the sender defers it.
    assert world.queues.poll() == 2
    ((_, _, delay),) = [p for p in world.queues.published if p[0].startswith("sends-")][1:]
    assert delay == 43
    assert world.statuses() == ["deferred"]
    world.queues.clock.advance(42)
    assert world.queues.poll() == 0  # still delayed
    world.limiter.budget = 10
    world.queues.clock.advance(1)
    assert world.queues.poll() == 1
    assert world.statuses() == ["sent"]
    assert len(world.graph.calls) == 1


def _transient(n: int, _payload: dict[str, Any]) -> GraphError | None:
    if n == 0:
        return GraphError("transient", "a 500 from Graph", 2, None, 500, None)
    return None


def test_a_transient_graph_error_is_retried_after_its_backoff_and_sent_once(sqlite_url: str) -> None:
    for world in _world(sqlite_url, LocalQueues(), ScriptedGraph(_transient)):
        assert world.webhook(load_event("webhook_post_comment.json"))["statusCode"] == 200
        stats = world.queues.drain()
        assert len(world.graph.calls) == 2
        assert len(world.graph.delivered) == 1
        assert world.statuses() == ["sent"]
        assert stats.waited_seconds > 0  # the retry waited in queue time
        assert world.queues.dead_letters("sends-default") == []
