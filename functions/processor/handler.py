"""events-{high,default,low} -> the processor service, with a partial batch response."""

from __future__ import annotations

from typing import Any

from replyflow.domain.messages import EventMessage
from replyflow.services.sqs_batch import process_batch
from replyflow.wiring import pipeline


def _handle(body: str) -> None:
    pipeline.processor().process(EventMessage.from_json(body))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_batch(event, _handle, max_workers=4)
