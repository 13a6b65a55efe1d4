"""Queue publishers: SQS in AWS, the local broker on the local stack. Same port, same batching rule:
at most 10 messages and 256 KB per SendMessageBatch call.

The same two backends change the visibility of received messages (``QueueVisibility``): the workers
use it to send a failed record back after a short backoff rather than the full visibility timeout.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from replyflow.observability import logger

MAX_BATCH_MESSAGES = 10
MAX_BATCH_BYTES = 256 * 1024
MAX_VISIBILITY_BATCH = 10  # entries per ChangeMessageVisibilityBatch call


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


def queue_url_from_arn(queue_arn: str) -> str:
    """``arn:aws:sqs:REGION:ACCOUNT:NAME`` -> ``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``."""
    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {queue_arn!r}")
    _, partition, _, region, account, name = parts
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"


class SqsVisibility:
    """ChangeMessageVisibilityBatch; the client is built on first use (no boto3 on a clean batch)."""

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._factory = client_factory
        self._client: Any = None

    def change_visibility(self, queue_arn: str, changes: Sequence[tuple[str, int]]) -> None:
        if not changes:
            return
        if self._client is None:
            self._client = self._factory()
        url = queue_url_from_arn(queue_arn)
        for start in range(0, len(changes), MAX_VISIBILITY_BATCH):
            chunk = changes[start : start + MAX_VISIBILITY_BATCH]
            entries = [
                {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": timeout}
                for index, (handle, timeout) in enumerate(chunk)
            ]
            response = self._client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            for failed in response.get("Failed") or []:
                # The record then waits out the queue's visibility timeout: slower, never lost.
                logger.warning(
                    "ChangeMessageVisibility failed",
                    extra={
                        "queue_arn": queue_arn,
                        "code": failed.get("Code"),
                        "sender_fault": failed.get("SenderFault"),
                    },
                )


class LocalVisibility(Protocol):
    def change_message_visibility(
        self, queue: str, receipt_handle: str, visibility_timeout: float
    ) -> None: ...


class BrokerVisibility:
    """The local broker behind the same port; its queues are named by the ARN's last part."""

    def __init__(self, broker: LocalVisibility) -> None:
        self._broker = broker

    def change_visibility(self, queue_arn: str, changes: Sequence[tuple[str, int]]) -> None:
        queue = queue_arn.rsplit(":", 1)[-1]
        for handle, timeout in changes:
            try:
                self._broker.change_message_visibility(queue, handle, timeout)
            except (KeyError, ValueError) as error:  # as SQS's per-entry Failed: logged, not raised
                logger.warning(
                    "ChangeMessageVisibility failed", extra={"queue_arn": queue_arn, "error": str(error)}
                )
