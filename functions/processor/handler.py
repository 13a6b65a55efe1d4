"""events-{high,default,low} -> the processor service, with a partial batch response."""

from __future__ import annotations

from typing import Any

from replyflow.domain.messages import EventMessage
from replyflow.observability import MetricUnit, logger, metrics, tracer
from replyflow.services.sqs_batch import process_batch
from replyflow.wiring import pipeline


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    outcomes: list[str] = []  # appended from worker threads; metrics are added on this thread

    def handle(body: str) -> None:
        result = pipeline.processor().process(EventMessage.from_json(body))
        outcomes.append("duplicate" if result.duplicate else "processed")
        outcomes.extend("queued" for _ in result.queued)

    response = process_batch(event, handle, max_workers=4, backoff=pipeline.retry_backoff())
    for name in ("processed", "duplicate", "queued"):
        metrics.add_metric(name=f"Events{name.title()}", unit=MetricUnit.Count, value=outcomes.count(name))
    metrics.add_metric(name="EventsErrored", unit=MetricUnit.Count, value=len(response["batchItemFailures"]))
    metrics.flush_metrics()
    return response
