"""An in-process message broker with SQS semantics, wired from the template's queues and SQS events.

What it keeps from SQS (and Lambda's SQS event source), because the handlers depend on it:

- **At-least-once, unordered-ish delivery.** A received message is *in flight*: invisible until it is
  deleted or its visibility timeout passes, then visible again with ``ApproximateReceiveCount`` + 1.
- **Redrive.** A message already received ``maxReceiveCount`` times moves to the queue's DLQ on the
  next receive instead of being delivered (so at most ``maxReceiveCount`` deliveries).
- **Delays.** ``DelaySeconds`` per message, or the queue's default when the sender names none (note
  that :class:`~replyflow.adapters.queues.BrokerPublisher`, like ``SqsPublisher``, always names one).
- **ChangeMessageVisibility.** A consumer may move an in-flight message's deadline to ``now + timeout``
  (0..43200 s) with the receipt handle of its latest receive; the workers do it for failed records so
  they come back after a short, growing backoff instead of the full visibility timeout. A stale
  handle or a message no longer in flight raises :class:`ReceiptHandleError`, as SQS answers
  ``ReceiptHandleIsInvalid`` / ``MessageNotInflight``.
- **Lambda's poller.** Each SQS event source gets worker threads (``ScalingConfig.MaximumConcurrency``
  capped by ``workers``) that gather up to ``BatchSize`` messages, waiting at most
  ``MaximumBatchingWindowInSeconds`` (50 ms when the template sets none) for a batch to fill, and
  invoke the function with ``{"Records": [...]}``. A handler exception fails the whole batch; with
  ``ReportBatchItemFailures`` the ``batchItemFailures`` stay (and reappear after the visibility
  timeout) while the rest are deleted; an identifier that is not in the batch fails the whole batch,
  as Lambda does.

**Durability.** With a :class:`~local.queue_store.QueueStore` every change is written through to a
SQLite file before the call returns, and a new broker on the same file resumes every queue, DLQs
included: delays keep what they have left, receive counts are kept, and messages that were in flight
in the dead process are visible again at once (their consumer is gone; SQS would wait out the
visibility timeout, which here would only slow the restart). Without a store, queues live in memory.

Local-only departure: ``visibility_scale`` multiplies every visibility timeout, the ones a consumer
sets with ChangeMessageVisibility included (``replyflow run --visibility-scale 0.01`` turns the
template's 180 s into 1.8 s so retries and DLQ moves can be watched; the semantics are unchanged).

Time comes from an injectable monotonic ``clock`` (and ``wall_clock`` for the epoch timestamps in
record attributes), so unit tests drive visibility and delays with a fake clock and
:meth:`Broker.poll_once`, with no threads.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.queue_store import QueueStore, StoredMessage
from local.template import REGION, QueueSpec, SqsEvent, queue_arn

log = logging.getLogger("local.broker")

MAX_BODY_BYTES = 256 * 1024
MAX_DELAY_SECONDS = 900
MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200
DEFAULT_BATCHING_WINDOW = 0.05
SENDER_ID = "AIDALOCALREPLYFLOW0001"

Invoke = Callable[[dict[str, Any]], Any]
Clock = Callable[[], float]


class QueueNotFoundError(KeyError):
    """No queue of that logical name (SQS: AWS.SimpleQueueService.NonExistentQueue)."""


class ReceiptHandleError(ValueError):
    """The receipt handle is not the latest of a message in flight (SQS: ReceiptHandleIsInvalid or
    MessageNotInflight)."""


@dataclass
class _Message:
    message_id: str
    body: str
    md5: str
    sent_ms: int
    seq: int
    visible_at: float
    message_attributes: dict[str, Any] = field(default_factory=dict)
    receive_count: int = 0
    first_receive_ms: int | None = None
    receipt_handle: str | None = None
    invisible_until: float = 0.0
    dead_letter_source: str | None = None  # logical name of the queue it was moved from


@dataclass
class _Queue:
    spec: QueueSpec
    visibility_timeout: float
    messages: dict[str, _Message] = field(default_factory=dict)
    ready: list[tuple[float, int, str]] = field(default_factory=list)  # heap: not in flight
    inflight: set[str] = field(default_factory=set)
    expiry: list[tuple[float, int, str]] = field(default_factory=list)  # heap: in-flight deadlines
    receipts: dict[str, str] = field(default_factory=dict)  # receipt handle -> message id
    consumers: int = 0
    sent: int = 0
    received: int = 0
    deleted: int = 0
    dead_lettered: int = 0


@dataclass(frozen=True)
class Consumer:
    """One SQS event source: a queue feeding a function."""

    queue: str
    function_name: str
    invoke: Invoke
    batch_size: int = 10
    batching_window: float = DEFAULT_BATCHING_WINDOW
    report_batch_item_failures: bool = True
    workers: int = 1

    @classmethod
    def from_event(cls, event: SqsEvent, function_name: str, invoke: Invoke, *, max_workers: int) -> Consumer:
        concurrency = event.maximum_concurrency or max_workers
        return cls(
            queue=event.queue,
            function_name=function_name,
            invoke=invoke,
            batch_size=max(1, min(event.batch_size, 10_000)),
            batching_window=event.maximum_batching_window or DEFAULT_BATCHING_WINDOW,
            report_batch_item_failures=event.report_batch_item_failures,
            workers=max(1, min(concurrency, max_workers)),
        )


@dataclass(frozen=True)
class BatchResult:
    delivered: int
    deleted: int
    failed: int


class Broker:
    """Queues by logical name ("events-high"); thread-safe; implements ``LocalBroker``."""

    def __init__(
        self,
        queues: Iterable[QueueSpec],
        consumers: Iterable[Consumer] = (),
        *,
        visibility_scale: float = 1.0,
        dead_letter_queues: Iterable[str] = (),
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        store: QueueStore | None = None,
    ) -> None:
        if visibility_scale <= 0:
            raise ValueError("visibility_scale must be positive")
        self._clock = clock
        self._wall = wall_clock
        self._scale = visibility_scale
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._store = store
        # Messages a locked section changed (None: deleted); snapshotted into _pending when it ends.
        self._staged: dict[str, tuple[_Queue, _Message] | None] = {}
        # Group commit: rows waiting for the file (newest state per message), the generation of the
        # last snapshot and of the last commit, and whether some caller is writing right now.
        self._pending: dict[str, StoredMessage | None] = {}
        self._generation = 0
        self._committed = 0
        self._writing = False
        self._io = threading.Condition()
        self._queues: dict[str, _Queue] = {
            spec.name: _Queue(spec, max(0.05, spec.visibility_timeout * visibility_scale)) for spec in queues
        }
        self._dlq_sources: dict[str, str] = {}
        for spec in self._queues.values():
            if spec.spec.dlq:
                if spec.spec.dlq not in self._queues:
                    raise ValueError(f"queue {spec.spec.name}: DLQ {spec.spec.dlq!r} is not defined")
                self._dlq_sources.setdefault(spec.spec.dlq, spec.spec.name)
        self._dead_letter_names = set(self._dlq_sources) | set(dead_letter_queues)
        self._consumers: list[Consumer] = []
        for consumer in consumers:
            self.add_consumer(consumer)
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._busy = 0  # batches being handled right now
        if store is not None:
            self._restore(store)

    # ------------------------------------------------------------------------------ durability

    def _restore(self, store: QueueStore) -> None:
        now, wall = self._clock(), self._wall()
        restored: dict[str, int] = {}
        last_seq = -1
        for stored in store.load():
            q = self._queues.get(stored.queue)
            if q is None:
                log.warning(
                    "%s: message %s of unknown queue %r left as is",
                    store.path,
                    stored.message_id,
                    stored.queue,
                )
                continue
            message = _Message(
                message_id=stored.message_id,
                body=stored.body,
                md5=stored.md5,
                sent_ms=stored.sent_ms,
                seq=stored.seq,
                visible_at=now if stored.inflight else now + (stored.visible_at - wall),
                message_attributes=dict(stored.attributes),
                receive_count=stored.receive_count,
                first_receive_ms=stored.first_receive_ms,
                dead_letter_source=stored.dead_letter_source,
            )
            self._enqueue(q, message)
            restored[q.spec.name] = restored.get(q.spec.name, 0) + 1
            last_seq = max(last_seq, stored.seq)
        self._seq = itertools.count(last_seq + 1)
        self._staged.clear()
        if restored:
            log.info("broker resumed %d messages from %s: %s", sum(restored.values()), store.path, restored)

    def _stage(self, q: _Queue, message: _Message) -> None:
        if self._store is not None:
            self._staged[message.message_id] = (q, message)

    def _stage_delete(self, message_id: str) -> None:
        if self._store is not None:
            self._staged[message_id] = None

    def _flush(self) -> int:
        """Under the lock: snapshot what this section changed into the pending rows; returns the
        generation to pass to :meth:`_durable` once the lock is released (0: nothing to wait for)."""
        if self._store is None or not self._staged:
            return 0
        now, wall = self._clock(), self._wall()
        for message_id, entry in self._staged.items():
            if entry is None:
                self._pending[message_id] = None
                continue
            q, message = entry
            inflight = message_id in q.inflight
            deadline = message.invisible_until if inflight else message.visible_at
            self._pending[message_id] = StoredMessage(
                message_id=message_id,
                queue=q.spec.name,
                body=message.body,
                md5=message.md5,
                sent_ms=message.sent_ms,
                seq=message.seq,
                visible_at=wall + (deadline - now),
                inflight=inflight,
                attributes=message.message_attributes,
                receive_count=message.receive_count,
                first_receive_ms=message.first_receive_ms,
                dead_letter_source=message.dead_letter_source,
            )
        self._staged.clear()
        self._generation += 1
        return self._generation

    def _durable(self, generation: int) -> None:
        """Return once the rows of ``generation`` are committed (never called holding the lock).

        Group commit: the first caller to find nobody writing takes every pending row (its own and
        those of the callers that queued up meanwhile) and commits them in one transaction; the others
        wait for it. Throughput then does not hang on one commit per message."""
        store = self._store
        if not generation or store is None:
            return
        with self._io:
            while self._committed < generation:
                if self._writing:
                    self._io.wait()
                    continue
                self._writing = True
                with self._cond:
                    batch, self._pending = self._pending, {}
                    upto = self._generation
                self._io.release()
                try:
                    store.write(
                        [row for row in batch.values() if row is not None],
                        [message_id for message_id, row in batch.items() if row is None],
                    )
                except BaseException:
                    with self._cond:  # put the rows back under anything newer, for the next writer
                        self._pending = {**batch, **self._pending}
                    raise
                finally:
                    self._io.acquire()
                    self._writing = False
                    self._io.notify_all()
                self._committed = max(self._committed, upto)

    def close(self) -> None:
        """Release the state file (after :meth:`stop`)."""
        with self._cond:
            generation = self._flush()
        self._durable(generation)
        with self._cond:
            if self._store is not None:
                self._store.close()
                self._store = None

    # ------------------------------------------------------------------------------ producer side

    def add_consumer(self, consumer: Consumer) -> None:
        queue = self._queue(consumer.queue)
        queue.consumers += 1
        self._consumers.append(consumer)

    def send(self, queue: str, body: str, *, delay_seconds: int | None = None) -> None:
        """SendMessage (the ``LocalBroker`` port). ``delay_seconds=None`` uses the queue's default."""
        self.send_message(queue, body, delay_seconds=delay_seconds)

    def send_message(
        self,
        queue: str,
        body: str,
        *,
        delay_seconds: int | None = None,
        message_attributes: Mapping[str, Any] | None = None,
    ) -> str:
        """SendMessage with message attributes; returns the message id."""
        size = len(body.encode())
        if size > MAX_BODY_BYTES:
            raise ValueError(f"message of {size} bytes exceeds the 256 KB SQS limit")
        with self._cond:
            q = self._queue(queue)
            delay = q.spec.delay_seconds if delay_seconds is None else delay_seconds
            if not 0 <= delay <= MAX_DELAY_SECONDS:
                raise ValueError(f"DelaySeconds must be 0..900, got {delay}")
            message = self._new_message(body, delay, dict(message_attributes or {}))
            self._enqueue(q, message)
            q.sent += 1
            generation = self._flush()
            self._cond.notify_all()
        self._durable(generation)
        return message.message_id

    def _new_message(self, body: str, delay: float, attributes: dict[str, Any]) -> _Message:
        return _Message(
            message_id=str(uuid.uuid4()),
            body=body,
            md5=hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
            sent_ms=int(self._wall() * 1000),
            seq=next(self._seq),
            visible_at=self._clock() + delay,
            message_attributes=attributes,
        )

    def _enqueue(self, q: _Queue, message: _Message) -> None:
        q.messages[message.message_id] = message
        heapq.heappush(q.ready, (message.visible_at, message.seq, message.message_id))
        self._stage(q, message)

    # ------------------------------------------------------------------------------ consumer side

    def receive(self, queue: str, max_messages: int = 10) -> list[dict[str, Any]]:
        """ReceiveMessage (no waiting): up to ``max_messages`` SQS event records, now in flight."""
        with self._cond:
            records = self._receive(self._queue(queue), max_messages, self._clock())
            generation = self._flush()
        self._durable(generation)
        return records

    def delete(self, queue: str, receipt_handle: str) -> bool:
        """DeleteMessage; False when the receipt handle is stale (the message was received again)."""
        return self.delete_batch(queue, [receipt_handle]) == 1

    def delete_batch(self, queue: str, receipt_handles: Iterable[str]) -> int:
        """DeleteMessageBatch: how many handles deleted a message (stale ones delete nothing)."""
        with self._cond:
            q = self._queue(queue)
            deleted = sum(self._delete(q, handle) for handle in receipt_handles)
            generation = self._flush()
            if deleted:
                self._cond.notify_all()
        self._durable(generation)
        return deleted

    def _delete(self, q: _Queue, receipt_handle: str) -> bool:
        message_id = q.receipts.pop(receipt_handle, None)
        message = q.messages.get(message_id) if message_id else None
        if message is None or message.receipt_handle != receipt_handle:
            return False
        del q.messages[message.message_id]
        q.inflight.discard(message.message_id)
        q.deleted += 1
        self._stage_delete(message.message_id)
        return True

    def change_message_visibility(self, queue: str, receipt_handle: str, visibility_timeout: float) -> None:
        """ChangeMessageVisibility: the in-flight message becomes visible ``visibility_timeout`` seconds
        from now (times ``visibility_scale``); 0 makes it visible at once."""
        if not 0 <= visibility_timeout <= MAX_VISIBILITY_TIMEOUT_SECONDS:
            raise ValueError(
                f"VisibilityTimeout must be 0..{MAX_VISIBILITY_TIMEOUT_SECONDS}, got {visibility_timeout}"
            )
        with self._cond:
            q = self._queue(queue)
            now = self._clock()
            self._expire(q, now)
            message_id = q.receipts.get(receipt_handle)
            message = q.messages.get(message_id) if message_id else None
            if message is None or message.receipt_handle != receipt_handle:
                raise ReceiptHandleError("the receipt handle is not valid (ReceiptHandleIsInvalid)")
            if message_id not in q.inflight:
                raise ReceiptHandleError(f"message {message_id} is not in flight (MessageNotInflight)")
            message.invisible_until = now + visibility_timeout * self._scale
            heapq.heappush(q.expiry, (message.invisible_until, message.seq, message.message_id))
            self._stage(q, message)
            generation = self._flush()
            self._cond.notify_all()
        self._durable(generation)

    def _expire(self, q: _Queue, now: float) -> None:
        while q.expiry and q.expiry[0][0] <= now:
            deadline, _seq, message_id = heapq.heappop(q.expiry)
            message = q.messages.get(message_id)
            if message is None or message_id not in q.inflight or message.invisible_until != deadline:
                continue
            q.inflight.discard(message_id)
            message.visible_at = deadline
            heapq.heappush(q.ready, (deadline, message.seq, message_id))

    def _receive(self, q: _Queue, max_messages: int, now: float) -> list[dict[str, Any]]:
        self._expire(q, now)
        records: list[dict[str, Any]] = []
        while q.ready and q.ready[0][0] <= now and len(records) < max_messages:
            _, _, message_id = heapq.heappop(q.ready)
            message = q.messages.get(message_id)
            if message is None or message_id in q.inflight:
                continue
            limit = q.spec.max_receive_count
            if q.spec.dlq and limit is not None and message.receive_count >= limit:
                self._dead_letter(q, message)
                continue
            message.receive_count += 1
            wall_ms = int(self._wall() * 1000)
            if message.first_receive_ms is None:
                message.first_receive_ms = wall_ms
            if message.receipt_handle:
                q.receipts.pop(message.receipt_handle, None)
            message.receipt_handle = f"{uuid.uuid4().hex}:{message.message_id}"
            q.receipts[message.receipt_handle] = message_id
            message.invisible_until = now + q.visibility_timeout
            q.inflight.add(message_id)
            heapq.heappush(q.expiry, (message.invisible_until, message.seq, message_id))
            q.received += 1
            self._stage(q, message)
            records.append(self._record(q, message))
        return records

    def _dead_letter(self, q: _Queue, message: _Message) -> None:
        assert q.spec.dlq is not None
        dlq = self._queues[q.spec.dlq]
        del q.messages[message.message_id]
        self._staged.pop(message.message_id, None)  # the DLQ's upsert below replaces the row
        if message.receipt_handle:
            q.receipts.pop(message.receipt_handle, None)
        message.receipt_handle = None
        message.dead_letter_source = q.spec.name
        message.visible_at = self._clock()
        message.seq = next(self._seq)
        self._enqueue(dlq, message)
        q.dead_lettered += 1
        log.warning(
            "message %s moved to %s after %d receives",
            message.message_id,
            dlq.spec.name,
            message.receive_count,
        )

    def _record(self, q: _Queue, message: _Message) -> dict[str, Any]:
        attributes = {
            "ApproximateReceiveCount": str(message.receive_count),
            "SentTimestamp": str(message.sent_ms),
            "SenderId": SENDER_ID,
            "ApproximateFirstReceiveTimestamp": str(message.first_receive_ms),
        }
        if message.dead_letter_source:
            attributes["DeadLetterQueueSourceArn"] = queue_arn(message.dead_letter_source)
        return {
            "messageId": message.message_id,
            "receiptHandle": message.receipt_handle,
            "body": message.body,
            "attributes": attributes,
            "messageAttributes": dict(message.message_attributes),
            "md5OfBody": message.md5,
            "eventSource": "aws:sqs",
            "eventSourceARN": q.spec.arn,
            "awsRegion": REGION,
        }

    # ------------------------------------------------------------------------- Lambda event source

    def poll_once(self, consumer: Consumer) -> BatchResult:
        """Receive one batch for ``consumer`` without waiting and invoke it (what a worker does)."""
        with self._cond:
            records = self._receive(self._queue(consumer.queue), consumer.batch_size, self._clock())
            generation = self._flush()
            if records:
                self._busy += 1
        if not records:
            self._durable(generation)  # a receive that only moved messages to the DLQ
            return BatchResult(0, 0, 0)
        try:
            self._durable(generation)
            return self._deliver(consumer, records)
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def _deliver(self, consumer: Consumer, records: list[dict[str, Any]]) -> BatchResult:
        ids = [record["messageId"] for record in records]
        failed: set[str]
        try:
            response = consumer.invoke({"Records": records})
        except Exception:
            log.exception(
                "%s failed a batch of %d from %s; the messages reappear after the visibility timeout",
                consumer.function_name,
                len(records),
                consumer.queue,
            )
            failed = set(ids)
        else:
            failed = self._failed_items(consumer, response, ids)
        deleted = self.delete_batch(
            consumer.queue,
            [record["receiptHandle"] for record in records if record["messageId"] not in failed],
        )
        if failed:
            log.info(
                "%s: %d of %d records failed (%s)",
                consumer.function_name,
                len(failed),
                len(ids),
                consumer.queue,
            )
        return BatchResult(len(records), deleted, len(failed))

    @staticmethod
    def _failed_items(consumer: Consumer, response: Any, ids: list[str]) -> set[str]:
        if not consumer.report_batch_item_failures or not isinstance(response, dict):
            return set()
        items = response.get("batchItemFailures")
        if not items:
            return set()
        failed: set[str] = set()
        for item in items:
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not identifier or identifier not in ids:
                log.error(
                    "%s returned batchItemFailures with an unknown itemIdentifier %r: the whole batch "
                    "fails, as Lambda does",
                    consumer.function_name,
                    identifier,
                )
                return set(ids)
            failed.add(identifier)
        return failed

    def _worker(self, consumer: Consumer) -> None:
        while True:
            with self._cond:
                if not self._wait_for_batch(consumer):
                    return
            try:
                self.poll_once(consumer)
            except Exception:  # pragma: no cover - _deliver already contains handler errors
                log.exception("broker worker for %s crashed on a batch", consumer.queue)

    def _wait_for_batch(self, consumer: Consumer) -> bool:
        """Under the lock: wait until a batch is worth taking; False once the broker stops."""
        q = self._queues[consumer.queue]
        fill_deadline: float | None = None
        while not self._stopping:
            now = self._clock()
            self._expire(q, now)
            visible = self._count_visible(q, now, consumer.batch_size)
            if visible:
                if fill_deadline is None:
                    fill_deadline = now + consumer.batching_window
                if visible >= consumer.batch_size or now >= fill_deadline:
                    return True
                self._cond.wait(fill_deadline - now)
                continue
            self._cond.wait(self._idle_wait(q, now))
        return False

    @staticmethod
    def _count_visible(q: _Queue, now: float, cap: int) -> int:
        count = 0
        for visible_at, _seq, message_id in q.ready:
            if visible_at <= now and message_id not in q.inflight and message_id in q.messages:
                count += 1
                if count >= cap:
                    break
        return count

    @staticmethod
    def _idle_wait(q: _Queue, now: float) -> float:
        upcoming = [entry[0] for entry in (q.ready[:1] + q.expiry[:1])]
        if not upcoming:
            return 1.0
        return max(0.001, min(1.0, min(upcoming) - now))

    def start(self) -> None:
        with self._cond:
            self._stopping = False
        for consumer in self._consumers:
            for index in range(consumer.workers):
                thread = threading.Thread(
                    target=self._worker,
                    args=(consumer,),
                    name=f"broker-{consumer.queue}-{index}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        log.info("broker started: %d consumers, %d workers", len(self._consumers), len(self._threads))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking batches; batches being handled finish first (up to ``timeout``)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in self._threads if thread.is_alive()]
        if alive:
            log.warning("broker workers still running after %.0f s: %s", timeout, alive)
        self._threads = []

    # ------------------------------------------------------------------------------ inspection

    def queue_names(self) -> list[str]:
        return list(self._queues)

    def _queue(self, name: str) -> _Queue:
        try:
            return self._queues[name]
        except KeyError:
            raise QueueNotFoundError(f"no queue named {name!r}") from None

    def _counts(self, q: _Queue, now: float) -> tuple[int, int, int]:
        self._expire(q, now)
        visible = delayed = 0
        for visible_at, _seq, message_id in q.ready:
            if message_id in q.inflight or message_id not in q.messages:
                continue
            if visible_at <= now:
                visible += 1
            else:
                delayed += 1
        return visible, len(q.inflight), delayed

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per queue: visible, in_flight, delayed, oldest_age_seconds, dlq (messages in its DLQ), ..."""
        with self._cond:
            now, wall_ms = self._clock(), int(self._wall() * 1000)
            out: dict[str, dict[str, Any]] = {}
            for name, q in self._queues.items():
                visible, in_flight, delayed = self._counts(q, now)
                oldest = min((m.sent_ms for m in q.messages.values()), default=None)
                dlq = self._queues.get(q.spec.dlq) if q.spec.dlq else None
                out[name] = {
                    "visible": visible,
                    "in_flight": in_flight,
                    "delayed": delayed,
                    "oldest_age_seconds": round((wall_ms - oldest) / 1000, 3) if oldest is not None else 0.0,
                    "dlq": len(dlq.messages) if dlq is not None else None,
                    "dlq_name": q.spec.dlq,
                    "source": self._dlq_sources.get(name),
                    "is_dlq": name in self._dead_letter_names,
                    "consumers": q.consumers,
                    "visibility_timeout": q.visibility_timeout,
                    "max_receive_count": q.spec.max_receive_count,
                    "sent": q.sent,
                    "received": q.received,
                    "deleted": q.deleted,
                    "dead_lettered": q.dead_lettered,
                }
            return out

    def _resolve_dlq(self, name: str) -> _Queue:
        q = self._queue(name)
        if q.spec.dlq:
            return self._queues[q.spec.dlq]
        return q

    def dlq_messages(self, queue: str) -> list[dict[str, Any]]:
        """Messages in ``queue`` (a DLQ) or in the DLQ of ``queue`` (a source queue)."""
        with self._cond:
            dlq = self._resolve_dlq(queue)
            return [
                {
                    "messageId": m.message_id,
                    "body": m.body,
                    "receiveCount": m.receive_count,
                    "sentTimestamp": m.sent_ms,
                    "source": m.dead_letter_source or self._dlq_sources.get(dlq.spec.name),
                    "queue": dlq.spec.name,
                }
                for m in sorted(dlq.messages.values(), key=lambda m: m.seq)
            ]

    def redrive(self, queue: str) -> int:
        """Move every message of a DLQ (named directly or by its source queue) back to its source."""
        with self._cond:
            dlq = self._resolve_dlq(queue)
            moved = 0
            for message in sorted(dlq.messages.values(), key=lambda m: m.seq):
                if message.message_id in dlq.inflight:
                    continue
                source = message.dead_letter_source or self._dlq_sources.get(dlq.spec.name)
                if source is None or source not in self._queues:
                    continue
                del dlq.messages[message.message_id]
                self._stage_delete(message.message_id)
                target = self._queues[source]
                fresh = self._new_message(message.body, 0, dict(message.message_attributes))
                self._enqueue(target, fresh)
                target.sent += 1
                moved += 1
            dlq.ready = [entry for entry in dlq.ready if entry[2] in dlq.messages]
            heapq.heapify(dlq.ready)
            generation = self._flush()
            if moved:
                log.info("redrove %d messages from %s", moved, dlq.spec.name)
                self._cond.notify_all()
        self._durable(generation)
        return moved

    def purge(self, queue: str) -> None:
        with self._cond:
            q = self._queue(queue)
            for message_id in q.messages:
                self._stage_delete(message_id)
            q.messages.clear()
            q.ready.clear()
            q.inflight.clear()
            q.expiry.clear()
            q.receipts.clear()
            generation = self._flush()
        self._durable(generation)

    def next_due(self) -> float | None:
        """When (on the broker's clock) something in a consumed queue is next visible: a delayed
        message, or an in-flight one whose visibility timeout ends; None when those queues are empty.
        A test on a fake clock advances to it instead of sleeping."""
        with self._cond:
            due: list[float] = []
            for q in self._queues.values():
                if not q.consumers:
                    continue
                due.extend(
                    visible_at
                    for visible_at, _seq, message_id in q.ready
                    if message_id in q.messages and message_id not in q.inflight
                )
                due.extend(
                    deadline
                    for deadline, _seq, message_id in q.expiry
                    if message_id in q.inflight and q.messages[message_id].invisible_until == deadline
                )
            return min(due, default=None)

    def is_idle(self, *, include_delayed: bool = True) -> bool:
        with self._cond:
            return self._idle(include_delayed)

    def _idle(self, include_delayed: bool) -> bool:
        if self._busy:
            return False
        now = self._clock()
        for q in self._queues.values():
            if not q.consumers:
                continue
            visible, in_flight, delayed = self._counts(q, now)
            if visible or in_flight or (include_delayed and delayed):
                return False
        return True

    def wait_idle(self, timeout: float = 30.0, *, include_delayed: bool = True) -> bool:
        """Block until every consumed queue is empty and nothing is in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._idle(include_delayed):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True
