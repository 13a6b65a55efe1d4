"""The local broker on its SQLite file: a restart resumes every queue (delays, receive counts, DLQs),
and ChangeMessageVisibility behaves as SQS's, including through the workers' retry backoff.

A "crash" here is a broker whose file is closed without :meth:`Broker.close` (every call has already
committed what it changed before returning); the kill -9 of a whole stack is in
``tests/e2e/test_crash_recovery.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local.broker import Broker, Consumer, ReceiptHandleError
from local.queue_store import QueueStore, StateLockedError
from local.template import QueueSpec
from replyflow.adapters.queues import BrokerVisibility
from replyflow.services.sqs_batch import RetryBackoff, process_batch


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.fail_bodies: set[str] = set()

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        records = event["Records"]
        self.batches.append(records)
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in records if r["body"] in self.fail_bodies
            ]
        }

    def bodies(self) -> list[str]:
        return [r["body"] for batch in self.batches for r in batch]


def queues() -> list[QueueSpec]:
    return [
        QueueSpec("WorkQueue", "work", 30, 0, "work-dlq", 3),
        QueueSpec("WorkDlq", "work-dlq", 30, 0, None, None),
    ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def open_broker(path: Path, clock: FakeClock, handler: Any, *, scale: float = 1.0) -> tuple[Broker, Consumer]:
    consumer = Consumer("work", "WorkFunction", handler)
    broker = Broker(
        queues(), [consumer], clock=clock, wall_clock=clock, visibility_scale=scale, store=QueueStore(path)
    )
    return broker, consumer


def crash(broker: Broker) -> None:
    """Drop the broker as a killed process would: the file keeps only what was committed."""
    store = broker._store
    assert store is not None
    store.close()


def test_a_restart_resumes_visible_delayed_in_flight_and_dead_lettered_messages(tmp_path, clock):
    path = tmp_path / "broker.sqlite3"
    handler = Recorder()
    broker, consumer = open_broker(path, clock, handler)
    broker.send("work", "poison")
    handler.fail_bodies = {"poison"}
    for _ in range(3):  # maxReceiveCount 3
        broker.poll_once(consumer)
        clock.advance(30)
    broker.poll_once(consumer)  # moves it to the DLQ
    broker.send("work", "later", delay_seconds=60)
    broker.send("work", "in-flight")
    assert len(broker.receive("work")) == 1  # received, never deleted
    broker.send("work", "ready")
    clock.advance(20)
    crash(broker)

    handler = Recorder()
    broker, consumer = open_broker(path, clock, handler)
    stats = broker.stats()["work"]
    assert (stats["visible"], stats["in_flight"], stats["delayed"], stats["dlq"]) == (2, 0, 1, 1)
    broker.poll_once(consumer)
    (batch,) = handler.batches
    counts = {r["body"]: r["attributes"]["ApproximateReceiveCount"] for r in batch}
    # The consumer of the dead process is gone: its message is visible at once, its receive kept.
    assert counts == {"in-flight": "2", "ready": "1"}
    clock.advance(39)
    assert broker.poll_once(consumer).delivered == 0  # "later" has 40 of its 60 s left
    clock.advance(1)
    assert broker.poll_once(consumer).delivered == 1
    assert handler.bodies()[-1] == "later"
    (dead,) = broker.dlq_messages("work")
    assert (dead["body"], dead["receiveCount"], dead["source"]) == ("poison", 3, "work")
    assert broker.redrive("work") == 1
    crash(broker)

    broker, consumer = open_broker(path, clock, Recorder())
    assert broker.dlq_messages("work") == []
    assert broker.stats()["work"]["visible"] == 1  # the redriven message, and nothing delivered again
    broker.close()


def test_receive_counts_survive_restarts_so_the_dlq_rule_holds(tmp_path, clock):
    path = tmp_path / "broker.sqlite3"
    broker, _ = open_broker(path, clock, Recorder())
    broker.send("work", "poison")
    crash(broker)
    for _ in range(3):  # one failed delivery per process, then the process dies
        handler = Recorder()
        handler.fail_bodies = {"poison"}
        broker, consumer = open_broker(path, clock, handler)
        assert broker.poll_once(consumer).failed == 1
        crash(broker)
    handler = Recorder()
    broker, consumer = open_broker(path, clock, handler)
    assert broker.poll_once(consumer).delivered == 0
    assert handler.batches == []
    assert [m["receiveCount"] for m in broker.dlq_messages("work")] == [3]
    broker.close()


def test_deleted_messages_stay_deleted_and_the_file_is_owned_by_one_broker(tmp_path, clock):
    path = tmp_path / "broker.sqlite3"
    handler = Recorder()
    broker, consumer = open_broker(path, clock, handler)
    for index in range(25):
        broker.send("work", json.dumps({"n": index}))
    while broker.poll_once(consumer).delivered:
        pass
    with pytest.raises(StateLockedError):
        QueueStore(path)
    crash(broker)
    broker, consumer = open_broker(path, clock, Recorder())
    assert broker.is_idle()
    broker.send("work", "after")  # message ids and order continue after the restart
    assert [r["body"] for r in broker.receive("work")] == ["after"]
    broker.close()


def test_change_message_visibility_moves_the_deadline_from_now(tmp_path, clock):
    broker, _ = open_broker(tmp_path / "b.sqlite3", clock, Recorder())
    broker.send("work", "x")
    (record,) = broker.receive("work")
    clock.advance(10)
    broker.change_message_visibility("work", record["receiptHandle"], 5)
    clock.advance(4.9)
    assert broker.receive("work") == []
    clock.advance(0.1)
    (again,) = broker.receive("work")
    assert again["attributes"]["ApproximateReceiveCount"] == "2"

    with pytest.raises(ReceiptHandleError):  # the first receive's handle is stale now
        broker.change_message_visibility("work", record["receiptHandle"], 5)
    broker.change_message_visibility("work", again["receiptHandle"], 0)  # 0: visible at once
    (third,) = broker.receive("work")
    assert broker.delete("work", third["receiptHandle"])
    with pytest.raises(ReceiptHandleError):
        broker.change_message_visibility("work", third["receiptHandle"], 5)
    with pytest.raises(ValueError, match=r"0\.\.43200"):
        broker.change_message_visibility("work", third["receiptHandle"], 43_201)
    broker.close()


def test_a_message_whose_visibility_ran_out_is_not_in_flight(clock):
    broker = Broker(queues(), clock=clock, wall_clock=clock)
    broker.send("work", "x")
    (record,) = broker.receive("work")
    clock.advance(30)
    with pytest.raises(ReceiptHandleError, match="not in flight"):
        broker.change_message_visibility("work", record["receiptHandle"], 5)


def test_the_visibility_scale_applies_to_changed_visibility(clock):
    broker = Broker(queues(), clock=clock, wall_clock=clock, visibility_scale=0.1)
    broker.send("work", "x")
    (record,) = broker.receive("work")
    broker.change_message_visibility("work", record["receiptHandle"], 20)
    clock.advance(1.9)
    assert broker.receive("work") == []
    clock.advance(0.1)
    assert len(broker.receive("work")) == 1


def test_the_workers_backoff_brings_a_failed_record_back_before_the_visibility_timeout(tmp_path, clock):
    """process_batch + RetryBackoff + BrokerVisibility, as the processor and sender handlers run."""
    calls: list[str] = []

    def handle(body: str) -> None:
        calls.append(body)
        if body == "flaky" and calls.count("flaky") < 3:
            raise ConnectionError("redis is down")

    holder: dict[str, Broker] = {}
    backoff = RetryBackoff(
        BrokerVisibility(_Late(holder)), base_seconds=2, max_seconds=180, jitter=lambda: 1.0
    )

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        return process_batch(event, handle, backoff=backoff)

    broker, consumer = open_broker(tmp_path / "b.sqlite3", clock, invoke)
    holder["broker"] = broker
    broker.send("work", "flaky")
    broker.send("work", "fine")
    assert broker.poll_once(consumer).failed == 1
    clock.advance(1.9)
    assert broker.poll_once(consumer).delivered == 0
    clock.advance(0.1)  # 2 s after the first failure (base 2 x 3^0), not the queue's 30 s
    assert broker.poll_once(consumer).failed == 1
    clock.advance(5.9)
    assert broker.poll_once(consumer).delivered == 0
    clock.advance(0.1)  # 6 s (2 x 3^1)
    assert broker.poll_once(consumer).deleted == 1
    assert sorted(calls) == ["fine", "flaky", "flaky", "flaky"]
    assert broker.is_idle()
    broker.close()


class _Late:
    """The broker the handler reaches, bound after the broker (which needs the handler) exists."""

    def __init__(self, holder: dict[str, Broker]) -> None:
        self._holder = holder

    def change_message_visibility(self, queue: str, receipt_handle: str, visibility_timeout: float) -> None:
        self._holder["broker"].change_message_visibility(queue, receipt_handle, visibility_timeout)
