"""SQS partial batch responses for the pipeline's workers (``ReportBatchItemFailures``), with a
per-record retry backoff.

Records run concurrently on a thread pool (each call opens its own database session); a record that
raises is reported by its ``messageId`` and only it is redelivered, never the whole batch. A worker
may first hand the whole batch to ``together`` (the processor: one transaction for the batch), which
settles the records it can, each as done or failed on its own; the records it leaves go to the pool.
Each record runs in a copy of the caller's context (``contextvars``) and its processing time is the
``RecordDuration`` metric (milliseconds, one value per record, ok or failed).

Before the response goes back, each failed record's visibility is changed (``ChangeMessageVisibility``)
to a short delay that grows with its ``ApproximateReceiveCount``: ``base x 3^(n - 1)`` seconds, at most
``max``, of which the upper half is random so the records of one outage do not all come back in the
same second. With the defaults (5 s, 180 s) a record is retried after 2.5-5 s, 7.5-15 s, 22.5-45 s and
67.5-135 s, and 90-180 s after its fifth failure it moves to the DLQ (``maxReceiveCount`` 5): a
five-second Redis or database outage costs seconds, not the 180 s visibility timeout, and a poison
message reaches its DLQ after 190-380 s (900 s without the backoff). A failure to change the
visibility is logged and otherwise harmless: the record then waits out the visibility timeout, as it
did without a backoff.

A record refused because a move between shards holds its tenant (``TenantMovingError``) is
*deferred*, not failed: its body is sent again to its queue with a delay of ``defer_seconds`` (the
upper half random) and the record is reported done, so however long the move lasts the record
never counts a receive toward the DLQ. If the queue does not take it, the record fails as any other
(retried, nothing lost). The processor dedupes events by key and the sender by the outbound row, so
the copy is safe to receive twice.
"""

from __future__ import annotations

import contextvars
import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from replyflow.errors import TenantMovingError
from replyflow.observability import MetricUnit, clear_tenant, logger, metrics
from replyflow.ports import QueueVisibility

T = TypeVar("T")
R = TypeVar("R")
BACKOFF_FACTOR = 3
DEFER_SECONDS = 10  # a deferred record comes back after 5-10 s: a move's pause is its settle + copy
MAX_EXPONENT = 20  # 3^20 s is far past any cap; keeps the arithmetic small for absurd receive counts
_metrics_lock = threading.Lock()  # the record threads share one metric set


class RetryBackoff:
    """The visibility a failed record gets, set through the ``QueueVisibility`` port."""

    def __init__(
        self,
        visibility: QueueVisibility,
        *,
        base_seconds: float,
        max_seconds: float,
        jitter: Callable[[], float] = random.random,
        defer_seconds: float = DEFER_SECONDS,
    ) -> None:
        self._visibility = visibility
        self._base = base_seconds
        self._max = max_seconds
        self._jitter = jitter
        self._defer = defer_seconds

    @property
    def enabled(self) -> bool:
        return self._base > 0 and self._max > 0

    def delay(self, receive_count: int) -> int:
        """Seconds of invisibility after the ``receive_count``-th delivery failed (whole seconds, as
        SQS takes them; at least 1)."""
        exponent = min(max(receive_count, 1) - 1, MAX_EXPONENT)
        full = min(self._max, self._base * BACKOFF_FACTOR**exponent)
        return max(1, math.ceil(full / 2 + self._jitter() * full / 2))

    def apply(self, failed: Sequence[dict[str, Any]]) -> None:
        if not self.enabled or not failed:
            return
        by_queue: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for record in failed:
            arn, handle = record.get("eventSourceARN"), record.get("receiptHandle")
            if not arn or not handle:
                continue
            by_queue[str(arn)].append((str(handle), self.delay(_receive_count(record))))
        for arn, changes in by_queue.items():
            try:
                self._visibility.change_visibility(arn, changes)
            except Exception:
                logger.exception(
                    "could not shorten the retry of failed records; they wait out the visibility timeout",
                    extra={"queue_arn": arn, "records": len(changes)},
                )

    def defer(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send the records' bodies again to their queues, delayed; the records it could not send
        (they then fail as any other)."""
        by_queue: dict[str, list[dict[str, Any]]] = defaultdict(list)
        kept: list[dict[str, Any]] = []
        for record in records:
            arn = record.get("eventSourceARN")
            (by_queue[str(arn)] if arn else kept).append(record)
        delay = max(1, math.ceil(self._defer / 2 + self._jitter() * self._defer / 2))
        for arn, queued in by_queue.items():
            try:
                self._visibility.send_again(
                    arn, [str(r.get("body") or "") for r in queued], delay_seconds=delay
                )
            except Exception:
                logger.exception(
                    "could not defer records; they fail and are retried", extra={"queue_arn": arn}
                )
                kept.extend(queued)
        return kept


def run_each(
    work: Callable[[T], R], items: Sequence[T], *, max_workers: int, pool: ThreadPoolExecutor | None = None
) -> list[R | Exception]:
    """``work`` on each item on a thread pool (each in a copy of the caller's context): its result,
    or the exception it raised (logged by the caller, with its record). On ``pool`` when given (a
    pool the caller keeps), else on one of ``max_workers`` threads for this call."""

    def run(item: T) -> R | Exception:
        clear_tenant()
        try:
            return work(item)
        except Exception as error:
            return error

    if len(items) <= 1:
        return [run(item) for item in items]
    if pool is not None:
        return _on(pool, run, items)
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(items)))) as own:
        return _on(own, run, items)


def _on(
    pool: ThreadPoolExecutor, run: Callable[[T], R | Exception], items: Sequence[T]
) -> list[R | Exception]:
    futures = [pool.submit(contextvars.copy_context().run, run, item) for item in items]
    return [future.result() for future in futures]


def _together(together: Together, records: Sequence[dict[str, Any]]) -> dict[int, str]:
    """The records ``together`` settled: index -> ``ok``, ``failed`` or ``deferred``."""
    clear_tenant()
    started = time.perf_counter()
    try:
        done = together(records)
    finally:
        clear_tenant()
    if done:
        per_record_ms = (time.perf_counter() - started) * 1000 / len(done)
        for _ in done:
            _record_duration(per_record_ms)
    return {
        i: "ok" if error is None else _outcome(records[i], error)
        for i, error in done.items()
        if 0 <= i < len(records)
    }


def _outcome(record: dict[str, Any], error: Exception) -> str:
    """``deferred`` for a record whose tenant is being moved (it comes back after the move's pause),
    else ``failed`` (logged)."""
    if isinstance(error, TenantMovingError):
        logger.info(
            "record deferred: its tenant is being moved",
            extra={"message_id": str(record.get("messageId", ""))},
        )
        return "deferred"
    _failed(record, error)
    return "failed"


def _failed(record: dict[str, Any], error: Exception) -> None:
    """Log a failed record with its exception."""
    receives = (record.get("attributes") or {}).get("ApproximateReceiveCount")
    extra = {"message_id": str(record.get("messageId", "")), "receive_count": receives}
    logger.error("record failed", extra=extra, exc_info=error)


def _record_duration(elapsed_ms: float) -> None:
    with _metrics_lock:
        metrics.add_metric(name="RecordDuration", unit=MetricUnit.Milliseconds, value=elapsed_ms)


def _receive_count(record: dict[str, Any]) -> int:
    try:
        return int((record.get("attributes") or {}).get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 1


# Handles several records at once: record index -> None (done) or the exception it failed with. A
# record it leaves out is handled alone by ``handle``.
Together = Callable[[Sequence[dict[str, Any]]], dict[int, Exception | None]]


def process_batch(
    event: dict[str, Any],
    handle: Callable[[str], object],
    *,
    max_workers: int = 10,
    backoff: RetryBackoff | None = None,
    together: Together | None = None,
) -> dict[str, list[dict[str, str]]]:
    records = event.get("Records") or []
    if not records:
        return {"batchItemFailures": []}

    def run(record: dict[str, Any]) -> str:
        started = time.perf_counter()
        try:
            handle(record.get("body") or "")
        except Exception as error:
            return _outcome(record, error)
        finally:
            _record_duration((time.perf_counter() - started) * 1000)
        return "ok"

    settled = _together(together, records) if together is not None and len(records) > 1 else {}
    ran = iter(run_each(run, [r for i, r in enumerate(records) if i not in settled], max_workers=max_workers))
    outcomes = [settled[i] if i in settled else str(next(ran)) for i in range(len(records))]
    failing = {id(record) for record in _failed_after_deferring(records, outcomes, backoff)}
    return {
        "batchItemFailures": [
            {"itemIdentifier": str(record.get("messageId", ""))}
            for record in records
            if id(record) in failing
        ]
    }


def _failed_after_deferring(
    records: Sequence[dict[str, Any]], outcomes: Sequence[str], backoff: RetryBackoff | None
) -> list[dict[str, Any]]:
    """The records that failed: ``failed`` ones, and ``deferred`` ones the queue did not take back
    (every one without a backoff to defer them); the failed ones get the backoff's delay."""
    deferred = [record for record, outcome in zip(records, outcomes, strict=True) if outcome == "deferred"]
    failed = [record for record, outcome in zip(records, outcomes, strict=True) if outcome == "failed"]
    failed += backoff.defer(deferred) if backoff is not None else deferred
    if deferred:
        with _metrics_lock:
            metrics.add_metric(name="RecordsDeferred", unit=MetricUnit.Count, value=len(deferred))
    if backoff is not None:
        backoff.apply(failed)
    return failed
