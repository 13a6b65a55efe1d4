"""Per-record retry backoff: a failed record's visibility is changed to a short delay that grows with its
ApproximateReceiveCount, through the ``QueueVisibility`` port (SQS with moto here; the local broker in
``test_broker_durable.py``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest
from moto import mock_aws

from replyflow.adapters.queues import SqsVisibility, queue_url_from_arn
from replyflow.services.sqs_batch import RetryBackoff, process_batch

ARN = "arn:aws:sqs:us-east-1:123456789012:rf-events-high"


class FakeVisibility:
    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[tuple[str, list[tuple[str, int]]]] = []
        self.sent: list[tuple[str, list[str], int]] = []
        self.fail = fail

    def change_visibility(self, queue_arn: str, changes: Sequence[tuple[str, int]]) -> None:
        self.calls.append((queue_arn, list(changes)))
        if self.fail:
            raise ConnectionError("sqs unreachable")

    def send_again(self, queue_arn: str, bodies: Sequence[str], *, delay_seconds: int) -> None:
        if self.fail:
            raise ConnectionError("sqs unreachable")
        self.sent.append((queue_arn, list(bodies), delay_seconds))


def record(message_id: str, body: str, receives: int, arn: str = ARN) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receives)},
        "eventSourceARN": arn,
    }


def failing_on(*bad: str) -> Any:
    def handle(body: str) -> None:
        if body in bad:
            raise RuntimeError("database is down")

    return handle


def test_the_delay_grows_with_the_receive_count_up_to_the_cap() -> None:
    top = RetryBackoff(FakeVisibility(), base_seconds=5, max_seconds=180, jitter=lambda: 1.0)
    bottom = RetryBackoff(FakeVisibility(), base_seconds=5, max_seconds=180, jitter=lambda: 0.0)
    assert [top.delay(n) for n in range(1, 7)] == [5, 15, 45, 135, 180, 180]
    assert [bottom.delay(n) for n in range(1, 7)] == [3, 8, 23, 68, 90, 90]  # half, rounded up
    assert top.delay(0) == 5
    assert top.delay(10_000) == 180


def test_only_failed_records_get_a_shorter_visibility_grouped_by_queue() -> None:
    visibility = FakeVisibility()
    backoff = RetryBackoff(visibility, base_seconds=5, max_seconds=180, jitter=lambda: 1.0)
    other = "arn:aws:sqs:us-east-1:123456789012:rf-events-low"
    event = {
        "Records": [
            record("1", "ok", 1),
            record("2", "bad", 1),
            record("3", "bad", 3),
            record("4", "bad", 2, arn=other),
        ]
    }
    response = process_batch(event, failing_on("bad"), backoff=backoff)
    assert response == {"batchItemFailures": [{"itemIdentifier": i} for i in ("2", "3", "4")]}
    assert sorted(visibility.calls) == [
        (ARN, [("handle-2", 5), ("handle-3", 45)]),
        (other, [("handle-4", 15)]),
    ]


def test_a_clean_batch_and_a_disabled_backoff_change_nothing() -> None:
    visibility = FakeVisibility()
    backoff = RetryBackoff(visibility, base_seconds=5, max_seconds=180)
    process_batch({"Records": [record("1", "ok", 1)]}, failing_on(), backoff=backoff)
    off = RetryBackoff(visibility, base_seconds=0, max_seconds=180)
    assert process_batch({"Records": [record("2", "bad", 1)]}, failing_on("bad"), backoff=off) == {
        "batchItemFailures": [{"itemIdentifier": "2"}]
    }
    assert visibility.calls == []


def test_a_failing_visibility_call_still_returns_the_partial_batch_response() -> None:
    visibility = FakeVisibility(fail=True)
    backoff = RetryBackoff(visibility, base_seconds=5, max_seconds=180)
    response = process_batch({"Records": [record("1", "bad", 1)]}, failing_on("bad"), backoff=backoff)
    assert response == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    assert len(visibility.calls) == 1


def test_queue_urls_come_from_the_event_source_arn() -> None:
    assert queue_url_from_arn(ARN) == "https://sqs.us-east-1.amazonaws.com/123456789012/rf-events-high"
    assert (
        queue_url_from_arn("arn:aws-cn:sqs:cn-north-1:1:q") == "https://sqs.cn-north-1.amazonaws.com.cn/1/q"
    )
    with pytest.raises(ValueError, match="not an SQS queue ARN"):
        queue_url_from_arn("arn:aws:sns:us-east-1:1:topic")


@pytest.fixture
def sqs() -> Iterator[tuple[Any, str, str]]:
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        url = client.create_queue(QueueName="rf-sends-default", Attributes={"VisibilityTimeout": "180"})[
            "QueueUrl"
        ]
        arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        yield client, url, arn


def test_sqs_visibility_changes_the_visibility_of_the_received_messages(sqs: tuple[Any, str, str]) -> None:
    client, url, arn = sqs
    for index in range(12):
        client.send_message(QueueUrl=url, MessageBody=f"m{index}")
    handles: list[str] = []
    while len(handles) < 12:
        received = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        handles += [m["ReceiptHandle"] for m in received]
    built: list[int] = []

    def factory() -> Any:
        built.append(1)
        return client

    visibility = SqsVisibility(factory)
    assert built == []  # no client until a record fails
    visibility.change_visibility(arn, [(handle, 0) for handle in handles])  # 12: two batch calls
    assert built == [1]
    again = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert len(again) == 10  # visible at once again, not after the queue's 180 s
    visibility.change_visibility(arn, [("not-a-handle", 5)])  # per-entry failures are logged, not raised


def _moving_on(*held: str) -> Any:
    from replyflow.errors import TenantMovingError

    def handle(body: str) -> None:
        if body in held:
            raise TenantMovingError("being moved")
        if body == "bad":
            raise RuntimeError("database is down")

    return handle


def test_a_record_of_a_tenant_being_moved_is_sent_again_delayed_not_failed() -> None:
    visibility = FakeVisibility()
    backoff = RetryBackoff(visibility, base_seconds=5, max_seconds=180, jitter=lambda: 1.0, defer_seconds=10)
    event = {"Records": [record("1", "moving", 4), record("2", "ok", 1), record("3", "bad", 1)]}
    response = process_batch(event, _moving_on("moving"), backoff=backoff)
    # Deferred: a new message of the same body, 10 s later, and not a failure (its 4 receives do not
    # bring it closer to the DLQ).
    assert visibility.sent == [(ARN, ["moving"], 10)]
    assert response == {"batchItemFailures": [{"itemIdentifier": "3"}]}
    assert [handle for _, changes in visibility.calls for handle, _ in changes] == ["handle-3"]


def test_a_deferred_record_the_queue_does_not_take_fails_and_is_retried() -> None:
    visibility = FakeVisibility(fail=True)
    backoff = RetryBackoff(visibility, base_seconds=5, max_seconds=180, jitter=lambda: 1.0)
    response = process_batch({"Records": [record("1", "moving", 1)]}, _moving_on("moving"), backoff=backoff)
    assert response == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    no_port = process_batch({"Records": [record("1", "moving", 1)]}, _moving_on("moving"))
    assert no_port == {"batchItemFailures": [{"itemIdentifier": "1"}]}


def test_sqs_visibility_sends_deferred_bodies_again_to_their_queue(sqs: tuple[Any, str, str]) -> None:
    client, url, arn = sqs
    SqsVisibility(lambda: client).send_again(arn, ["d1", "d2"], delay_seconds=0)
    got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in got) == ["d1", "d2"]


def test_the_local_broker_takes_deferred_bodies_by_the_arn_s_queue_name() -> None:
    from replyflow.adapters.queues import BrokerVisibility

    class Broker:
        def __init__(self) -> None:
            self.sent: list[tuple[str, str, int | None]] = []

        def change_message_visibility(
            self, queue: str, receipt_handle: str, visibility_timeout: float
        ) -> None:
            pass

        def send(self, queue: str, body: str, *, delay_seconds: int | None = None) -> None:
            self.sent.append((queue, body, delay_seconds))

    broker = Broker()
    BrokerVisibility(broker).send_again(ARN, ["d1"], delay_seconds=7)
    assert broker.sent == [("rf-events-high", "d1", 7)]
