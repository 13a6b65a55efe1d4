"""Queue publishers: SQS in AWS, the local broker on the local stack. Same port, same batching rule:
at most 10 messages and 256 KB per SendMessageBatch call (SQS counts message attributes in the 256 KB,
so the SQS publisher sizes whole entries). Every SQS message carries the job's ``tenant_id`` and
``account_id`` as message attributes.

The same two backends change the visibility of received messages (``QueueVisibility``): the workers
use it to send a failed record back after a short backoff rather than the full visibility timeout.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from replyflow.observability import logger, traced
from replyflow.ports import LocalBroker, LocalVisibility

MAX_BATCH_MESSAGES = 10
MAX_BATCH_BYTES = 256 * 1024
MAX_DELAY_SECONDS = 900  # SQS's per-message delay limit; longer deferrals are re-delayed on receipt
ATTRIBUTE_NAMES = ("tenant_id", "account_id")
_T = TypeVar("_T")
MAX_VISIBILITY_BATCH = 10  # entries per ChangeMessageVisibilityBatch call


def batches(bodies: Sequence[str]) -> Iterator[list[str]]:
    yield from _chunks(bodies, lambda body: len(body.encode()))


def _chunks(items: Sequence[_T], size_of: Callable[[_T], int]) -> Iterator[list[_T]]:
    """Consecutive runs of at most 10 items and 256 KB; an item over 256 KB on its own is an error."""
    batch: list[_T] = []
    size = 0
    for item in items:
        item_size = size_of(item)
        if item_size > MAX_BATCH_BYTES:
            raise ValueError(f"queue message of {item_size} bytes exceeds the 256 KB SQS limit")
        if batch and (len(batch) == MAX_BATCH_MESSAGES or size + item_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch


def message_attributes(body: str) -> dict[str, dict[str, str]]:
    """``tenant_id`` and ``account_id`` of a job body as SQS message attributes, so an operator can
    tell whose messages sit in a queue or DLQ (console, CLI) without decoding bodies."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        name: {"DataType": "String", "StringValue": value}
        for name in ATTRIBUTE_NAMES
        if isinstance(value := data.get(name), str) and value
    }


def entry_size(entry: dict[str, Any]) -> int:
    """SQS counts the body and every attribute's name, type and value towards the 256 KB."""
    size = len(entry["MessageBody"].encode())
    for name, attribute in entry.get("MessageAttributes", {}).items():
        size += len(name.encode()) + len(attribute["DataType"].encode())
        size += len(attribute["StringValue"].encode())
    return size


class SqsPublisher:
    def __init__(self, client: Any, queue_urls: dict[str, str]) -> None:
        self._sqs = client
        self._urls = queue_urls

    def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None:
        url = self._urls.get(queue)
        if url is None:
            raise KeyError(f"no URL configured for queue {queue!r} (QUEUE_URLS)")
        delay = max(0, min(delay_seconds, MAX_DELAY_SECONDS))
        entries = _entries(bodies, delay)
        with traced(f"sqs publish {queue}", queue=queue, messages=len(entries), delay_seconds=delay):
            for batch in _chunks(entries, entry_size):
                response = self._sqs.send_message_batch(QueueUrl=url, Entries=batch)
                failed = response.get("Failed") or []
                if failed:
                    raise RuntimeError(
                        f"SQS rejected {len(failed)} of {len(batch)} messages to {queue}: {failed}"
                    )


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

    def send_again(self, queue_arn: str, bodies: Sequence[str], *, delay_seconds: int) -> None:
        if not bodies:
            return
        if self._client is None:
            self._client = self._factory()
        url = queue_url_from_arn(queue_arn)
        delay = max(0, min(delay_seconds, MAX_DELAY_SECONDS))
        entries = _entries(bodies, delay)
        for batch in _chunks(entries, entry_size):
            failed = self._client.send_message_batch(QueueUrl=url, Entries=batch).get("Failed") or []
            if failed:
                raise RuntimeError(f"SQS rejected {len(failed)} of {len(batch)} deferred records: {failed}")


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

    def send_again(self, queue_arn: str, bodies: Sequence[str], *, delay_seconds: int) -> None:
        queue = queue_arn.rsplit(":", 1)[-1]
        for body in bodies:
            self._broker.send(queue, body, delay_seconds=delay_seconds)


def _entries(bodies: Sequence[str], delay: int) -> list[dict[str, Any]]:
    """``SendMessageBatch`` entries of ``bodies``, each with its routing attributes."""
    entries = []
    for body in bodies:
        entry: dict[str, Any] = {"Id": uuid.uuid4().hex, "MessageBody": body, "DelaySeconds": delay}
        attributes = message_attributes(body)
        if attributes:
            entry["MessageAttributes"] = attributes
        entries.append(entry)
    return entries
