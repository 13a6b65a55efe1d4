"""The sample events in events/ drive the three handlers (webhook, processor, sender) on SQLite,
fakeredis and a scripted Graph client, through template.yaml's queues on the local broker (fake
clock): no sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from processor import handler as processor
from replyflow.clock import utcnow
from replyflow.db.engine import session_scope
from replyflow.domain.messages import EventMessage
from replyflow.services import cache_keys
from replyflow.services.demo_seed import seed_demo
from replyflow.settings import Settings
from replyflow.wiring.pipeline import PipelineDeps, build_pipeline
from sender import handler as sender
from tests.conftest import load_event
from tests.support_pipeline import LocalQueues, ScriptedGraph, lambda_context
from webhook import handler as webhook


@dataclass(frozen=True)
class Local:
    queues: LocalQueues
    graph: ScriptedGraph
    demo: Any
    deps: PipelineDeps

    def webhook(self, event: dict[str, Any]) -> dict[str, Any]:
        return webhook.make_handler(lambda: self.deps)(event, lambda_context())

    def processor(self, event: dict[str, Any]) -> dict[str, Any]:
        return processor.make_handler(lambda: self.deps)(event, lambda_context())

    def sender(self, event: dict[str, Any]) -> dict[str, Any]:
        return sender.make_handler(lambda: self.deps)(event, lambda_context())


@pytest.fixture
def local(sqlite_url: str) -> Iterator[Local]:
    queues, graph = LocalQueues(), ScriptedGraph()
    deps = build_pipeline(
        Settings(environment="test", database_url=sqlite_url),
        publisher=queues,
        visibility=queues.visibility,
        graph=graph,
    )
    queues.bind("processor", processor.make_handler(lambda: deps))
    queues.bind("sender", sender.make_handler(lambda: deps))
    cache = deps.clients.cache
    with session_scope(deps.clients.writer_sessions) as session:
        demo = seed_demo(session, deps.clients.cipher, "sandbox-token", now=utcnow())
    cache.delete(cache_keys.account_route_key(demo.ig_user_id))
    yield Local(queues, graph, demo, deps)
    cache.delete(
        cache_keys.account_route_key(demo.ig_user_id),
        cache_keys.automations_key(demo.tenant_id, demo.account_id),
    )


def test_handshake_event() -> None:
    handler = webhook.make_handler(lambda: build_pipeline(Settings(environment="test")))
    response = handler(load_event("webhook_get_handshake.json"), lambda_context())
    assert (response["statusCode"], response["body"]) == (200, "1158201444")


@pytest.mark.parametrize("name", ["webhook_post_comment.json", "webhook_post_comment_base64.json"])
def test_sample_webhook_to_sandbox_call(local: Local, name: str) -> None:
    queues, graph, demo = local.queues, local.graph, local.demo
    # A cold route cache: the webhook reads the database once, then caches the route.
    assert local.webhook(load_event(name))["statusCode"] == 200
    route = local.deps.clients.cache.get_json(cache_keys.account_route_key(demo.ig_user_id))
    assert route is not None
    assert route["tenant_id"] == demo.tenant_id
    assert queues.pending("events-default") == 1  # the demo tenant is on the pro plan
    # Through the template's queues: the event to the processor, its send job to the sender.
    stats = queues.drain()
    assert (stats.delivered, stats.failed, queues.pending()) == (2, 0, 0)
    (call,) = graph.calls
    assert call["recipient"] == {"comment_id": "17958213400876543"}
    assert call["message"] == {"text": "Hi maya.creates! Here is your link: https://example.com/preset-pack"}


def test_sample_sqs_events_parse() -> None:
    records = load_event("processor_sqs_comment.json")["Records"]
    assert EventMessage.from_json(records[0]["body"]).event.comment_id == "17958213400876543"
    jobs = load_event("sender_sqs_jobs.json")["Records"]
    assert [json.loads(r["body"])["outbound_id"] for r in jobs] == [1, 2]


def test_a_record_that_fails_is_reported_alone(local: Local) -> None:
    event = load_event("processor_sqs_comment.json")  # ids that exist nowhere: processed, logged
    event["Records"].append({**event["Records"][0], "messageId": "bad", "body": "{not json"})
    result = local.processor(event)
    assert result == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
