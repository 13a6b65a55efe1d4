"""Entry point of ``ApiFunction`` (every /v1 route, /health, /openapi.json, /docs).

The Powertools resolver keeps the current event on the app object, so one app serves one request at a
time. Lambda never runs two invocations in one process; the local stack runs handlers on threads, so
the lock gives it Lambda's semantics (concurrency comes from more instances, not shared state).
"""

from __future__ import annotations

import threading
from typing import Any

from api import security_headers
from api.app import get_app
from replyflow.observability import clear_tenant, logger, tracer

_one_at_a_time = threading.Lock()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with _one_at_a_time:
        app = get_app()
        app.clear_context()
        clear_tenant()  # the route binds the caller's tenant; none is left from the last request
        return security_headers.apply(event, app.resolve(event, context))
