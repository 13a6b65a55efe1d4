"""Dead-letter queue tools for SQS (``replyflow dlq list|redrive`` in AWS; the local broker has its own).

``client`` is a boto3 SQS client; ``queue_urls`` maps logical names (``events-high``, ...) to source
queue URLs (settings ``QUEUE_URLS``). Each source queue's DLQ is found from its RedrivePolicy.

Redrive moves messages back to their source queue: receive a batch from the DLQ, send it to the
source (body and message attributes unchanged), then delete from the DLQ only what was sent. It is
at-least-once: a crash between send and delete leaves a copy in the DLQ, and redriving it again sends
a duplicate, which the pipeline absorbs (``inbound_events`` and the outbound ledger deduplicate).
Messages that fail to send stay in the DLQ and reappear after ``visibility_timeout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from replyflow.adapters.sqs_admin import dead_letter_url, queue_depth
from replyflow.errors import NotFoundError


@dataclass(frozen=True)
class DlqInfo:
    queue: str
    dlq_url: str | None
    messages: int
    in_flight: int


@dataclass(frozen=True)
class RedriveResult:
    queue: str
    moved: int
    failed: int


class UnknownQueueError(NotFoundError, KeyError):
    """A queue name that is not in QUEUE_URLS."""


def list_dlqs(client: Any, queue_urls: Mapping[str, str]) -> list[DlqInfo]:
    """Every source queue with its DLQ and the DLQ's approximate depth."""
    out = []
    for queue, url in sorted(queue_urls.items()):
        dlq_url = dead_letter_url(client, url)
        depth = queue_depth(client, dlq_url) if dlq_url else {}
        out.append(
            DlqInfo(
                queue=queue,
                dlq_url=dlq_url,
                messages=depth.get("ApproximateNumberOfMessages", 0),
                in_flight=depth.get("ApproximateNumberOfMessagesNotVisible", 0),
            )
        )
    return out


def peek(client: Any, queue_urls: Mapping[str, str], queue: str, *, limit: int = 10) -> list[dict[str, Any]]:
    """Up to ``limit`` (<= 10) DLQ messages, left in place (visibility 0); their receive count grows."""
    dlq_url = _dlq_of(client, queue_urls, queue)
    if dlq_url is None:
        return []
    response = client.receive_message(
        QueueUrl=dlq_url,
        MaxNumberOfMessages=max(1, min(limit, 10)),
        VisibilityTimeout=0,
        WaitTimeSeconds=0,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return [
        {"message_id": m["MessageId"], "body": m["Body"], "attributes": m.get("Attributes", {})}
        for m in response.get("Messages", [])
    ]


def redrive(
    client: Any,
    queue_urls: Mapping[str, str],
    queue: str | None = None,
    *,
    max_messages: int | None = None,
    visibility_timeout: int = 60,
) -> list[RedriveResult]:
    """Move DLQ messages back to their source queue (one queue, or every queue when ``queue`` is None)."""
    names = [queue] if queue is not None else sorted(queue_urls)
    results = []
    for name in names:
        dlq_url = _dlq_of(client, queue_urls, name)
        moved = failed = 0
        empty_polls = 0
        # Short polling samples a subset of servers: two empty answers in a row mean empty.
        while dlq_url is not None and empty_polls < 2:
            if max_messages is not None and moved >= max_messages:
                break
            batch_size = 10 if max_messages is None else max(1, min(10, max_messages - moved))
            messages = client.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=batch_size,
                VisibilityTimeout=visibility_timeout,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                empty_polls += 1
                continue
            empty_polls = 0
            sent_ids, batch_failed = _send_back(client, queue_urls[name], messages)
            failed += batch_failed
            to_delete = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages)
                if str(i) in sent_ids
            ]
            if to_delete:
                client.delete_message_batch(QueueUrl=dlq_url, Entries=to_delete)
            moved += len(to_delete)
            if batch_failed == len(messages):
                break  # the source refuses everything; do not spin
        results.append(RedriveResult(name, moved, failed))
    return results


def _dlq_of(client: Any, queue_urls: Mapping[str, str], queue: str) -> str | None:
    if queue not in queue_urls:
        raise UnknownQueueError(queue)
    return dead_letter_url(client, queue_urls[queue])


def _send_back(client: Any, source_url: str, messages: list[dict[str, Any]]) -> tuple[set[str], int]:
    entries = []
    for i, message in enumerate(messages):
        entry: dict[str, Any] = {"Id": str(i), "MessageBody": message["Body"]}
        if message.get("MessageAttributes"):
            entry["MessageAttributes"] = message["MessageAttributes"]
        entries.append(entry)
    response = client.send_message_batch(QueueUrl=source_url, Entries=entries)
    sent = {item["Id"] for item in response.get("Successful", [])}
    return sent, len(response.get("Failed", []))
