"""sends-{high,default,low} -> the sender service; the records of one batch are sent concurrently and
failures are reported record by record."""

from __future__ import annotations

from typing import Any

from replyflow.domain.messages import SendJob
from replyflow.services.sqs_batch import process_batch
from replyflow.wiring import pipeline


def _handle(body: str) -> None:
    pipeline.sender().send(SendJob.from_json(body))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_batch(event, _handle, max_workers=10)
