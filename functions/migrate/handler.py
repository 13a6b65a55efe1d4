"""Entry point of ``MigrateFunction``, the service token of the ``DatabaseSchema`` custom resource.

CloudFormation waits up to an hour for the answer at the request's ResponseURL, so every path
answers: the service turns any failure into a FAILED response, and a timer answers FAILED shortly
before the Lambda timeout if the work is still running then. Exactly one answer is sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from replyflow.adapters.cfn_response import CustomResourceRequest, CustomResourceResponse
from replyflow.errors import ValidationError
from replyflow.observability import logger, tracer
from replyflow.services.schema_deploy import handle_request
from replyflow.settings import get_settings
from replyflow.wiring.migrate import MigrateDeps, Responder, build_migrate

if TYPE_CHECKING:
    from replyflow.wiring.roots import Handler

SAFETY_MARGIN_SECONDS = 10.0
DEFAULT_BUDGET_SECONDS = 300.0


class _AnswerOnce:
    def __init__(self, url: str, respond: Responder) -> None:
        self._url = url
        self._respond = respond
        self._lock = threading.Lock()
        self._sent = False

    def __call__(self, response: CustomResourceResponse) -> bool:
        with self._lock:
            if self._sent:
                return False
            self._sent = True
        self._respond(self._url, response)
        return True


def make_handler(deps: Callable[[], MigrateDeps]) -> Handler:
    """The entry point over the dependencies ``deps()`` returns (read at each invocation)."""

    @tracer.capture_lambda_handler(capture_response=False)
    @logger.inject_lambda_context(clear_state=True)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            request = CustomResourceRequest.model_validate(event)
        except PydanticValidationError as error:
            # Without a ResponseURL there is no one to answer; this is not CloudFormation calling.
            message = "not a CloudFormation custom resource request"
            raise ValidationError(message, details=error.errors()) from error
        migrate = deps()
        logger.append_keys(request_type=request.request_type, logical_resource_id=request.logical_resource_id)
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        budget = remaining_ms() / 1000 if callable(remaining_ms) else DEFAULT_BUDGET_SECONDS
        answer = _AnswerOnce(request.response_url, migrate.respond)
        timeout_answer = CustomResourceResponse.to(
            request,
            "FAILED",
            request.physical_resource_id or f"{request.logical_resource_id}-not-created",
            reason=f"the migration did not finish within the function's {budget:.0f} s",
        )
        timer = threading.Timer(max(budget - SAFETY_MARGIN_SECONDS, 1.0), answer, args=(timeout_answer,))
        timer.daemon = True
        timer.start()
        try:
            response = handle_request(
                request,
                migrate.secrets,
                migrate.engine_factory,
                deadline=time.monotonic() + budget - 2 * SAFETY_MARGIN_SECONDS,
            )
        finally:
            timer.cancel()
        answer(response)
        return response.model_dump(by_alias=True)

    return lambda_handler


@cache
def _deps() -> MigrateDeps:
    return build_migrate(get_settings())


lambda_handler = make_handler(_deps)
