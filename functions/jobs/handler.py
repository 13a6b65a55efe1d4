"""EventBridge Scheduler entry point: ``{"job": "<name>"}`` -> run that job -> its summary.

An unknown or missing job name raises (the invocation fails and goes to the function's DLQ). Jobs
stop ``SAFETY_MARGIN_SECONDS`` before the Lambda timeout and resume on the next run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from replyflow.errors import ValidationError
from replyflow.observability import logger, tracer
from replyflow.settings import get_settings
from replyflow.wiring import jobs
from replyflow.wiring.jobs import JobsDeps, build_jobs

if TYPE_CHECKING:
    from replyflow.wiring.roots import Handler, Roots

SAFETY_MARGIN_SECONDS = 30.0


class JobEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job: str


def make_handler(deps: Callable[[], JobsDeps]) -> Handler:
    """The entry point over the dependencies ``deps()`` returns (read at each invocation)."""

    @tracer.capture_lambda_handler(capture_response=False)
    @logger.inject_lambda_context(clear_state=True)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            request = JobEvent.model_validate(event)
        except PydanticValidationError as error:
            raise ValidationError('the event must be {"job": "<name>"}', details=error.errors()) from error
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        budget = remaining_ms() / 1000 - SAFETY_MARGIN_SECONDS if callable(remaining_ms) else None
        logger.append_keys(job=request.job)
        return jobs.run(deps(), request.job, deadline_seconds=None if budget is None else max(budget, 1.0))

    return lambda_handler


def bind(roots: Roots) -> Handler:
    """This function on the local stack's dependencies."""
    return make_handler(lambda: roots.jobs)


@cache
def _deps() -> JobsDeps:
    return build_jobs(get_settings())


lambda_handler = make_handler(_deps)
