"""EventBridge Scheduler entry point: ``{"job": "<name>"}`` -> run that job -> its summary.

An unknown or missing job name raises (the invocation fails and goes to the function's DLQ). Jobs
stop ``SAFETY_MARGIN_SECONDS`` before the Lambda timeout and resume on the next run.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from replyflow.errors import ValidationError
from replyflow.observability import logger, tracer
from replyflow.wiring import jobs

SAFETY_MARGIN_SECONDS = 30.0


class JobEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job: str


@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        request = JobEvent.model_validate(event)
    except PydanticValidationError as error:
        raise ValidationError('the event must be {"job": "<name>"}', details=error.errors()) from error
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    deadline = max(remaining_ms() / 1000 - SAFETY_MARGIN_SECONDS, 1.0) if callable(remaining_ms) else None
    logger.append_keys(job=request.job)
    return jobs.run(request.job, deadline_seconds=deadline)
