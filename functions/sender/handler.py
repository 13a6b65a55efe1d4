"""sends-{high,default,low} -> the sender service; the records of one batch are sent concurrently and
failures are reported record by record."""

from __future__ import annotations

from collections import Counter
from typing import Any

from replyflow.domain.messages import SendJob
from replyflow.observability import MetricUnit, metrics
from replyflow.services.sqs_batch import process_batch
from replyflow.wiring import pipeline

# Metric names the CloudWatch dashboard and alarms read (infra/observability.yaml).
METRIC_BY_OUTCOME = {
    "sent": "MessagesSent",
    "deferred": "SendsDeferred",
    "skipped": "SendsSkipped",
    "failed": "SendsFailed",
}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    outcomes: list[str] = []  # appended from worker threads; metrics are added on this thread

    def handle(body: str) -> None:
        outcomes.append(pipeline.sender().send(SendJob.from_json(body)).status)

    response = process_batch(event, handle, max_workers=10)
    for status, count in Counter(outcomes).items():
        name = METRIC_BY_OUTCOME.get(status, f"Sends{status.title()}")
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="SendsErrored", unit=MetricUnit.Count, value=len(response["batchItemFailures"]))
    metrics.flush_metrics()
    return response
