"""The local broker keeps SQS semantics: batching, visibility timeout, receive count -> DLQ, delays,
partial batch failures, redrive. Driven with a fake clock and ``poll_once`` (no threads) except for the
worker tests, which use short real timeouts."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

import pytest

from local.broker import Broker, Consumer, QueueNotFoundError
from local.template import QueueSpec
from replyflow.adapters.queues import BrokerPublisher


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """A handler that records batches and fails what it is told to."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.fail_bodies: set[str] = set()
        self.raise_error = False

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        records = event["Records"]
        self.batches.append(records)
        if self.raise_error:
            raise RuntimeError("boom")
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in records if r["body"] in self.fail_bodies
            ]
        }


def queues(visibility: int = 30, max_receive: int = 3, delay: int = 0) -> list[QueueSpec]:
    return [
        QueueSpec("WorkQueue", "work", visibility, delay, "work-dlq", max_receive),
        QueueSpec("WorkDlq", "work-dlq", 30, 0, None, None),
    ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def handler() -> Recorder:
    return Recorder()


def make(
    clock: FakeClock, handler: Recorder, *, batch_size: int = 10, **queue_args: int
) -> tuple[Broker, Consumer]:
    consumer = Consumer("work", "WorkFunction", handler, batch_size=batch_size)
    broker = Broker(queues(**queue_args), [consumer], clock=clock, wall_clock=clock)
    return broker, consumer


def test_record_shape_is_an_sqs_event_record(clock, handler):
    broker, consumer = make(clock, handler)
    message_id = broker.send_message("work", '{"a": 1}')
    broker.poll_once(consumer)
    (record,) = handler.batches[0]
    assert record["messageId"] == message_id
    assert record["body"] == '{"a": 1}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:000000000000:work"
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"] == hashlib.md5(b'{"a": 1}').hexdigest()
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["attributes"]["SentTimestamp"] == str(int(clock.now * 1000))
    assert "ApproximateFirstReceiveTimestamp" in record["attributes"]
    assert "MessageGroupId" not in record["attributes"]
    assert record["receiptHandle"]


def test_batches_respect_batch_size(clock, handler):
    broker, consumer = make(clock, handler, batch_size=4)
    for i in range(10):
        broker.send("work", f"m{i}")
    results = [broker.poll_once(consumer) for _ in range(4)]
    assert [r.delivered for r in results] == [4, 4, 2, 0]
    assert [len(b) for b in handler.batches] == [4, 4, 2]
    assert sorted(r["body"] for b in handler.batches for r in b) == sorted(f"m{i}" for i in range(10))
    assert broker.is_idle()


def test_failed_batch_reappears_after_visibility_timeout_with_higher_receive_count(clock, handler):
    broker, consumer = make(clock, handler, visibility=30)
    broker.send("work", "x")
    handler.raise_error = True
    assert broker.poll_once(consumer).failed == 1
    assert broker.stats()["work"]["in_flight"] == 1
    clock.advance(29)
    assert broker.poll_once(consumer).delivered == 0  # still invisible
    clock.advance(1)
    handler.raise_error = False
    assert broker.poll_once(consumer).deleted == 1
    assert handler.batches[-1][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert broker.is_idle()


def test_message_moves_to_dlq_after_max_receive_count(clock, handler):
    broker, consumer = make(clock, handler, visibility=10, max_receive=3)
    broker.send("work", "poison")
    handler.raise_error = True
    for _ in range(3):
        assert broker.poll_once(consumer).delivered == 1
        clock.advance(10)
    assert broker.poll_once(consumer).delivered == 0  # 4th receive attempt moves it instead
    assert len(handler.batches) == 3
    stats = broker.stats()
    assert stats["work"]["visible"] == 0
    assert stats["work"]["dlq"] == 1
    assert stats["work"]["dead_lettered"] == 1
    assert stats["work-dlq"]["source"] == "work"
    assert stats["work-dlq"]["is_dlq"] is True
    assert stats["work"]["is_dlq"] is False
    (dead,) = broker.dlq_messages("work")
    assert dead["body"] == "poison"
    assert dead["receiveCount"] == 3
    assert dead["source"] == "work"


def test_redrive_moves_dlq_messages_back_as_fresh_messages(clock, handler):
    broker, consumer = make(clock, handler, visibility=1, max_receive=1)
    broker.send("work", "retry-me")
    handler.raise_error = True
    broker.poll_once(consumer)
    clock.advance(1)
    broker.poll_once(consumer)
    assert len(broker.dlq_messages("work-dlq")) == 1
    assert broker.redrive("work-dlq") == 1
    assert broker.dlq_messages("work-dlq") == []
    handler.raise_error = False
    assert broker.poll_once(consumer).deleted == 1
    assert handler.batches[-1][0]["attributes"]["ApproximateReceiveCount"] == "1"
    assert broker.redrive("work") == 0  # by source name: nothing left


def test_delay_seconds_per_message_and_per_queue(clock, handler):
    broker, consumer = make(clock, handler, delay=5)
    broker.send("work", "queue-default")  # None -> the queue's DelaySeconds
    broker.send("work", "explicit", delay_seconds=20)
    broker.send("work", "now", delay_seconds=0)
    assert broker.stats()["work"]["delayed"] == 2
    broker.poll_once(consumer)
    assert [r["body"] for r in handler.batches[-1]] == ["now"]
    clock.advance(5)
    broker.poll_once(consumer)
    assert [r["body"] for r in handler.batches[-1]] == ["queue-default"]
    clock.advance(14)
    assert broker.poll_once(consumer).delivered == 0
    assert not broker.is_idle()
    assert broker.is_idle(include_delayed=False)
    clock.advance(1)
    broker.poll_once(consumer)
    assert [r["body"] for r in handler.batches[-1]] == ["explicit"]
    with pytest.raises(ValueError, match="DelaySeconds"):
        broker.send("work", "too-late", delay_seconds=901)


def test_partial_batch_failure_keeps_only_the_failed_records(clock, handler):
    broker, consumer = make(clock, handler, visibility=30)
    for body in ("ok-1", "bad", "ok-2"):
        broker.send("work", body)
    handler.fail_bodies = {"bad"}
    result = broker.poll_once(consumer)
    assert (result.delivered, result.deleted, result.failed) == (3, 2, 1)
    clock.advance(30)
    handler.fail_bodies = set()
    broker.poll_once(consumer)
    assert [r["body"] for r in handler.batches[-1]] == ["bad"]
    assert broker.is_idle()


def test_unknown_item_identifier_fails_the_whole_batch(clock):
    def handler(event: dict[str, Any]) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}

    consumer = Consumer("work", "WorkFunction", handler)
    broker = Broker(queues(), [consumer], clock=clock, wall_clock=clock)
    broker.send("work", "a")
    broker.send("work", "b")
    assert broker.poll_once(consumer).failed == 2
    assert broker.stats()["work"]["in_flight"] == 2


def test_without_report_batch_item_failures_the_response_is_ignored(clock, handler):
    consumer = Consumer("work", "WorkFunction", handler, report_batch_item_failures=False)
    broker = Broker(queues(), [consumer], clock=clock, wall_clock=clock)
    broker.send("work", "bad")
    handler.fail_bodies = {"bad"}
    assert broker.poll_once(consumer).deleted == 1


def test_stale_receipt_handle_cannot_delete_a_redelivered_message(clock, handler):
    broker, _ = make(clock, handler, visibility=5)
    broker.send("work", "x")
    (first,) = broker.receive("work")
    clock.advance(5)
    (second,) = broker.receive("work")
    assert broker.delete("work", first["receiptHandle"]) is False
    assert broker.delete("work", second["receiptHandle"]) is True
    assert broker.stats()["work"]["in_flight"] == 0


def test_stats_and_unknown_queue(clock, handler):
    broker, _ = make(clock, handler)
    broker.send("work", "a")
    clock.advance(2.5)
    stats = broker.stats()["work"]
    assert stats["visible"] == 1
    assert stats["oldest_age_seconds"] == 2.5
    assert stats["dlq_name"] == "work-dlq"
    assert stats["consumers"] == 1
    with pytest.raises(QueueNotFoundError):
        broker.send("nope", "a")
    with pytest.raises(ValueError, match="256 KB"):
        broker.send("work", "x" * (256 * 1024 + 1))


def test_broker_publisher_goes_through_the_port(clock, handler):
    broker, consumer = make(clock, handler)
    BrokerPublisher(broker).publish("work", [json.dumps({"n": i}) for i in range(3)])
    broker.poll_once(consumer)
    assert [json.loads(r["body"])["n"] for r in handler.batches[0]] == [0, 1, 2]


def test_workers_batch_within_the_window_and_stop_cleanly():
    seen: list[int] = []
    started = threading.Event()
    release = threading.Event()

    def handler(event: dict[str, Any]) -> None:
        seen.append(len(event["Records"]))
        started.set()
        release.wait(5)

    consumer = Consumer("work", "WorkFunction", handler, batch_size=5, batching_window=0.3)
    broker = Broker(queues(), [consumer])
    broker.start()
    try:
        for i in range(3):
            broker.send("work", f"m{i}")
        assert started.wait(5)
        assert seen == [3]  # gathered within the window into one batch
        assert not broker.wait_idle(0.1)  # in flight while the handler runs
        release.set()
        assert broker.wait_idle(5)
    finally:
        release.set()
        t0 = time.monotonic()
        broker.stop()
        assert time.monotonic() - t0 < 5


def test_worker_redelivers_with_scaled_visibility_timeout():
    attempts: list[str] = []

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        record = event["Records"][0]
        attempts.append(record["attributes"]["ApproximateReceiveCount"])
        if len(attempts) < 2:
            return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
        return {"batchItemFailures": []}

    consumer = Consumer("work", "WorkFunction", handler, batch_size=1, batching_window=0.01)
    broker = Broker(queues(visibility=30), [consumer], visibility_scale=0.005)  # 30 s -> 0.15 s
    broker.start()
    try:
        broker.send("work", "retry")
        assert broker.wait_idle(5)
        assert attempts == ["1", "2"]
    finally:
        broker.stop()
