"""Queue publishers: SQS in AWS, the local broker on the local stack. Same port, same batching rule:
at most 10 messages and 256 KB per SendMessageBatch call."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

MAX_BATCH_MESSAGES = 10
MAX_BATCH_BYTES = 256 * 1024


def batches(bodies: Sequence[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for body in bodies:
        body_size = len(body.encode())
        if body_size > MAX_BATCH_BYTES:
            raise ValueError(f"queue message of {body_size} bytes exceeds the 256 KB SQS limit")
        if batch and (len(batch) == MAX_BATCH_MESSAGES or size + body_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(body)
        size += body_size
    if batch:
        yield batch


class SqsPublisher:
    def __init__(self, client: Any, queue_urls: dict[str, str]) -> None:
        self._sqs = client
        self._urls = queue_urls

    def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None:
        url = self._urls.get(queue)
        if url is None:
            raise KeyError(f"no URL configured for queue {queue!r} (QUEUE_URLS)")
        for batch in batches(bodies):
            entries = [
                {"Id": uuid.uuid4().hex, "MessageBody": body, "DelaySeconds": min(delay_seconds, 900)}
                for body in batch
            ]
            response = self._sqs.send_message_batch(QueueUrl=url, Entries=entries)
            failed = response.get("Failed") or []
            if failed:
                raise RuntimeError(
                    f"SQS rejected {len(failed)} of {len(entries)} messages to {queue}: {failed}"
                )


class LocalBroker(Protocol):
    def send(self, queue: str, body: str, *, delay_seconds: int = 0) -> None: ...


class BrokerPublisher:
    """The local stack's in-process broker behind the same port."""

    def __init__(self, broker: LocalBroker) -> None:
        self._broker = broker

    def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None:
        for batch in batches(bodies):
            for body in batch:
                self._broker.send(queue, body, delay_seconds=delay_seconds)
