"""Queue depth for the queue-metrics job, behind the ``QueueStatsSource`` port.

- :class:`SqsQueueStats`: SQS GetQueueAttributes per logical queue (depth only: the age of the
  oldest message is CloudWatch's ``AWS/SQS ApproximateAgeOfOldestMessage``, not an attribute). The
  DLQ comes from the queue's RedrivePolicy; its depth is None when it cannot be read.
- :class:`BrokerQueueStats`: the local broker's inspector (``stats()`` per queue with ``visible``,
  ``in_flight``, ``delayed``, ``oldest_age_seconds``, ``dlq``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from replyflow.ports import QueueInspector, QueueStats

DEPTH_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def dead_letter_url(client: Any, queue_url: str) -> str | None:
    """The URL of the queue's DLQ from its RedrivePolicy, or None when it has none."""
    attrs = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
    policy = attrs.get("Attributes", {}).get("RedrivePolicy")
    if not policy:
        return None
    arn = json.loads(policy)["deadLetterTargetArn"]
    _, _, _, _, account, name = arn.split(":", 5)
    url: str = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    return url


def queue_depth(client: Any, queue_url: str) -> dict[str, int]:
    attrs = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=DEPTH_ATTRIBUTES)["Attributes"]
    return {name: int(attrs.get(name, 0)) for name in DEPTH_ATTRIBUTES}


class SqsQueueStats:
    def __init__(self, client: Any, queue_urls: Mapping[str, str]) -> None:
        self._sqs = client
        self._urls = dict(queue_urls)
        self._dlq_urls: dict[str, str | None] = {}

    def stats(self) -> dict[str, QueueStats]:
        from botocore.exceptions import ClientError

        out: dict[str, QueueStats] = {}
        for queue, url in sorted(self._urls.items()):
            depth = queue_depth(self._sqs, url)
            dlq: int | None = None
            try:
                if queue not in self._dlq_urls:
                    self._dlq_urls[queue] = dead_letter_url(self._sqs, url)
                dlq_url = self._dlq_urls[queue]
                if dlq_url:
                    dlq = queue_depth(self._sqs, dlq_url)["ApproximateNumberOfMessages"]
            except ClientError:
                dlq = None  # no permission on the DLQ: its depth is alarmed from AWS/SQS instead
            out[queue] = QueueStats(
                visible=depth["ApproximateNumberOfMessages"],
                in_flight=depth["ApproximateNumberOfMessagesNotVisible"],
                delayed=depth["ApproximateNumberOfMessagesDelayed"],
                oldest_age_seconds=None,
                dlq=dlq,
            )
        return out


class BrokerQueueStats:
    def __init__(self, inspector: QueueInspector) -> None:
        self._inspector = inspector

    def stats(self) -> dict[str, QueueStats]:
        out: dict[str, QueueStats] = {}
        for queue, s in self._inspector.stats().items():
            age = s.get("oldest_age_seconds")
            dlq = s.get("dlq")
            if isinstance(dlq, Mapping):  # a broker that reports the DLQ's own stats
                dlq = dlq.get("visible", 0)
            out[queue] = QueueStats(
                visible=int(s.get("visible", 0)),
                in_flight=int(s.get("in_flight", 0)),
                delayed=int(s.get("delayed", 0)),
                oldest_age_seconds=None if age is None else float(age),
                dlq=None if dlq is None else int(dlq),
            )
        return out
