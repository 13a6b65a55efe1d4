"""The real SQS path: webhook -> events queue -> processor -> sends queue -> sender, through the boto3
SQS publisher (``AWS_ENDPOINT_URL`` at a moto server) against the real MariaDB, Redis and the
Instagram sandbox. The test plays Lambda's SQS poller: it receives up to 10 messages, hands them to
the handler as an SQS event, deletes what succeeded and lets a reported failure come back after the
visibility timeout."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from local.sandbox import SandboxServer
from processor import handler as processor
from replyflow.adapters.queues import MAX_BATCH_BYTES, SqsPublisher, entry_size
from replyflow.db.engine import session_scope
from replyflow.settings import PRIORITIES, Settings
from replyflow.wiring.pipeline import PipelineDeps, build_pipeline
from sender import handler as sender
from tests.support_pipeline import SECRET, comment_body, lambda_context, seed_tenant, webhook_post
from webhook import handler as webhook

pytestmark = pytest.mark.integration

QUEUE_NAMES = [f"{kind}-{priority}" for kind in ("events", "sends") for priority in PRIORITIES]
PRIVATE_REPLY = {
    "private_reply": {"template_text": "Hi {{username}}! Here is your link: https://example.com/p"}
}
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class SqsCalls:
    """Every SendMessageBatch the publisher made: (queue URL, entries)."""

    batches: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, params: dict[str, Any], **_: Any) -> None:
        with self.lock:
            self.batches.append((params["QueueUrl"], list(params["Entries"])))

    def to(self, url: str) -> list[list[dict[str, Any]]]:
        with self.lock:
            return [entries for queue_url, entries in self.batches if queue_url == url]


@dataclass
class SqsStack:
    sqs: Any
    urls: dict[str, str]
    sandbox: SandboxServer
    calls: SqsCalls
    deps: PipelineDeps
    received: list[dict[str, Any]] = field(default_factory=list)

    def sandbox_messages(self, ig_user_id: str) -> list[dict[str, Any]]:
        state = self.sandbox.app.state
        with state.lock:
            return [r.to_json() for r in state.sent if r.account_id == ig_user_id]

    def _depth(self) -> int:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        total = 0
        for url in self.urls.values():
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            total += sum(int(attributes.get(name, 0)) for name in names)
        return total

    def poll(self, timeout: float = 60.0) -> None:
        """Deliver every queue's messages to its worker until all queues are empty."""
        workers: list[tuple[str, Handler]] = [
            ("events-", processor.make_handler(lambda: self.deps)),
            ("sends-", sender.make_handler(lambda: self.deps)),
        ]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            delivered = False
            for prefix, handler in workers:
                for name, url in self.urls.items():
                    if name.startswith(prefix):
                        delivered |= self._deliver(url, handler)
            if not delivered:
                if self._depth() == 0:
                    return
                time.sleep(0.2)
        raise TimeoutError(f"queues not drained in {timeout}s")

    def _deliver(self, url: str, handler: Handler) -> bool:
        messages = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return False
        self.received.extend(messages)
        event = {"Records": [_lambda_record(url, m) for m in messages]}
        failed = {f["itemIdentifier"] for f in handler(event, lambda_context())["batchItemFailures"]}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return True


def _lambda_record(url: str, message: dict[str, Any]) -> dict[str, Any]:
    """An SQS message in the shape Lambda's event source mapping hands it to a function."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {"stringValue": a["StringValue"], "dataType": a["DataType"]}
            for name, a in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{url.rsplit('/', 1)[-1]}",
        "awsRegion": "us-east-1",
    }


def _create_queues(sqs: Any, prefix: str) -> dict[str, str]:
    urls = {}
    for name in QUEUE_NAMES:
        dlq = sqs.create_queue(QueueName=f"{prefix}-{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        urls[name] = sqs.create_queue(
            QueueName=f"{prefix}-{name}",
            Attributes={
                "VisibilityTimeout": "2",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
            },
        )["QueueUrl"]
    return urls


@pytest.fixture
def sqs_stack(moto_endpoint: str, mysql_url: str, redis_url: str) -> Iterator[SqsStack]:
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_endpoint)
    urls = _create_queues(sqs, f"rf-{secrets.token_hex(3)}")
    sandbox = SandboxServer(port=0, app_id="replyflow-test", app_secret="sandbox-secret", seed=11)
    sandbox.start()
    settings = Settings(
        environment="test",
        database_url=mysql_url,
        redis_url=redis_url,
        graph_api_base_url=sandbox.url,
        instagram_app_secret=SECRET.decode(),
        graph_timeout_seconds=5,
        queue_urls=urls,
        aws_endpoint_url=moto_endpoint,
        # Four sends per second per account: a batch of ten defers six, with SQS DelaySeconds.
        per_second_send_cap=4,
    )
    deps = build_pipeline(settings)  # no publisher argument: the boto3 SqsPublisher runs
    calls = SqsCalls()
    deps.clients.sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", calls.record)
    try:
        yield SqsStack(sqs, urls, sandbox, calls, deps)
    finally:
        sandbox.stop()
        for url in urls.values():
            sqs.delete_queue(QueueUrl=url)


def test_comments_through_real_sqs_end_in_exactly_one_private_reply_each(sqs_stack: SqsStack) -> None:
    clients = sqs_stack.deps.clients
    with session_scope(clients.writer_sessions) as session:
        ig = f"1784{uuid.uuid4().int % 10**13:013d}"
        token = sqs_stack.sandbox.issue_token(ig, "brand")
        seeded = seed_tenant(
            session,
            clients.cipher,
            token=token,
            ig_user_id=ig,
            automations=[{"keywords": ["LINK"], "actions": PRIVATE_REPLY}],
        )
    comment_ids = [f"179{uuid.uuid4().int % 10**14:014d}" for _ in range(12)]
    body = comment_body(ig, comment_ids[0])
    body["entry"][0]["changes"] = [
        comment_body(ig, cid, from_id=f"73519284650{i:05d}")["entry"][0]["changes"][0]
        for i, cid in enumerate(comment_ids)
    ]

    response = webhook.make_handler(lambda: sqs_stack.deps)(webhook_post(body), lambda_context())
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"received": 12}
    sqs_stack.poll()

    # Exactly one private reply per comment.
    sent = sqs_stack.sandbox_messages(ig)
    assert sorted(m["recipient"]["comment_id"] for m in sent) == sorted(comment_ids)

    # The webhook published its 12 events in SendMessageBatch calls of at most 10.
    events_batches = [
        entries
        for name, url in sqs_stack.urls.items()
        if name.startswith("events-")
        for entries in sqs_stack.calls.to(url)
    ]
    assert sorted(len(entries) for entries in events_batches) == [2, 10]
    # Every message carried its tenant and account as message attributes.
    for message in sqs_stack.received:
        attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
        assert attributes == {"tenant_id": seeded.tenant_id, "account_id": seeded.account_id}
    # The per-second cap deferred sends, re-published with an SQS delay rather than a busy retry.
    send_entries = [
        entry
        for name, url in sqs_stack.urls.items()
        if name.startswith("sends-")
        for entries in sqs_stack.calls.to(url)
        for entry in entries
    ]
    delayed = [e for e in send_entries if e["DelaySeconds"] > 0]
    assert delayed, "no deferral was published with DelaySeconds"
    assert all(1 <= e["DelaySeconds"] <= 900 for e in delayed)
    assert len(send_entries) == len(comment_ids) + len(delayed)


def test_the_publisher_splits_at_10_messages_and_256_kb_counting_attributes(moto_endpoint: str) -> None:
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_endpoint)
    url = sqs.create_queue(QueueName=f"rf-{secrets.token_hex(3)}-split")["QueueUrl"]
    calls = SqsCalls()
    sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", calls.record)
    publisher = SqsPublisher(sqs, {"sends-default": url})
    try:
        small = [json.dumps({"tenant_id": "t1", "account_id": "a1", "n": i}) for i in range(25)]
        publisher.publish("sends-default", small)
        assert [len(entries) for entries in calls.to(url)] == [10, 10, 5]

        # Four bodies of 64 KB fill 256 KB, but with their attributes they do not fit one call.
        calls.batches.clear()
        pad = 64 * 1024 - len(json.dumps({"tenant_id": "t1", "account_id": "a1", "pad": ""}))
        big = [json.dumps({"tenant_id": "t1", "account_id": "a1", "pad": "x" * pad}) for _ in range(4)]
        assert sum(len(b) for b in big) == MAX_BATCH_BYTES
        publisher.publish("sends-default", big)
        batches = calls.to(url)
        assert [len(entries) for entries in batches] == [3, 1]
        assert all(sum(entry_size(e) for e in entries) <= MAX_BATCH_BYTES for entries in batches)

        bodies: list[str] = []
        while len(bodies) < 29:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
            bodies.extend(m["Body"] for m in got.get("Messages", []))
            for m in got.get("Messages", []):
                assert m["MessageAttributes"]["tenant_id"]["StringValue"] == "t1"
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        assert sorted(bodies) == sorted(small + big)

        with pytest.raises(ValueError, match="256 KB"):
            publisher.publish("sends-default", ["x" * (MAX_BATCH_BYTES + 1)])
    finally:
        sqs.delete_queue(QueueUrl=url)


def test_a_deferral_is_invisible_until_its_delay_has_passed(moto_endpoint: str) -> None:
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_endpoint)
    url = sqs.create_queue(QueueName=f"rf-{secrets.token_hex(3)}-delay")["QueueUrl"]
    try:
        SqsPublisher(sqs, {"sends-low": url}).publish("sends-low", ['{"tenant_id": "t"}'], delay_seconds=2)
        assert "Messages" not in sqs.receive_message(QueueUrl=url)
        time.sleep(2.2)
        (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
        assert message["Body"] == '{"tenant_id": "t"}'
    finally:
        sqs.delete_queue(QueueUrl=url)
