"""The sample events in events/ drive the three handlers (webhook, processor, sender) on SQLite,
fakeredis and a scripted Graph client: no sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from processor.handler import lambda_handler as processor_handler
from replyflow.clock import utcnow
from replyflow.db.engine import session_scope
from replyflow.domain.messages import EventMessage
from replyflow.services import cache_keys
from replyflow.services.demo_seed import seed_demo
from replyflow.settings import Settings
from replyflow.wiring import core, pipeline
from sender.handler import lambda_handler as sender_handler
from tests.conftest import load_event
from tests.support_pipeline import MemoryQueues, ScriptedGraph, lambda_context, sqs_event
from webhook.handler import lambda_handler as webhook_handler


@pytest.fixture
def local(sqlite_url: str) -> Iterator[tuple[MemoryQueues, ScriptedGraph, Any]]:
    queues, graph = MemoryQueues(), ScriptedGraph()
    core.override(settings=Settings(environment="test", database_url=sqlite_url), queue_publisher=queues)
    core.override(graph_client=graph)
    pipeline.reset()
    with session_scope(core.writer_sessions()) as session:
        demo = seed_demo(session, core.cipher(), "sandbox-token", now=utcnow())
    core.cache().delete(cache_keys.account_route_key(demo.ig_user_id))
    yield queues, graph, demo
    core.cache().delete(
        cache_keys.account_route_key(demo.ig_user_id),
        cache_keys.automations_key(demo.tenant_id, demo.account_id),
    )
    core.clear_overrides()
    pipeline.reset()


def test_handshake_event() -> None:
    core.override(settings=Settings(environment="test"))
    try:
        response = webhook_handler(load_event("webhook_get_handshake.json"), lambda_context())
    finally:
        core.clear_overrides()
    assert (response["statusCode"], response["body"]) == (200, "1158201444")


@pytest.mark.parametrize("name", ["webhook_post_comment.json", "webhook_post_comment_base64.json"])
def test_sample_webhook_to_sandbox_call(local: tuple[MemoryQueues, ScriptedGraph, Any], name: str) -> None:
    queues, graph, demo = local
    # A cold route cache: the webhook reads the database once, then caches the route.
    assert webhook_handler(load_event(name), lambda_context())["statusCode"] == 200
    route = core.cache().get_json(cache_keys.account_route_key(demo.ig_user_id))
    assert route is not None
    assert route["tenant_id"] == demo.tenant_id
    ((queue, body),) = queues.take("events-")
    assert queue == "events-default"  # the demo tenant is on the pro plan
    assert processor_handler(sqs_event([body]), lambda_context()) == {"batchItemFailures": []}
    jobs = [b for _, b in queues.take("sends-")]
    assert sender_handler(sqs_event(jobs), lambda_context()) == {"batchItemFailures": []}
    (call,) = graph.calls
    assert call["recipient"] == {"comment_id": "17958213400876543"}
    assert call["message"] == {"text": "Hi maya.creates! Here is your link: https://example.com/preset-pack"}


def test_sample_sqs_events_parse() -> None:
    records = load_event("processor_sqs_comment.json")["Records"]
    assert EventMessage.from_json(records[0]["body"]).event.comment_id == "17958213400876543"
    jobs = load_event("sender_sqs_jobs.json")["Records"]
    assert [json.loads(r["body"])["outbound_id"] for r in jobs] == [1, 2]


def test_a_record_that_fails_is_reported_alone(local: tuple[MemoryQueues, ScriptedGraph, Any]) -> None:
    event = load_event("processor_sqs_comment.json")  # ids that exist nowhere: processed, logged
    event["Records"].append({**event["Records"][0], "messageId": "bad", "body": "{not json"})
    result = processor_handler(event, lambda_context())
    assert result == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
