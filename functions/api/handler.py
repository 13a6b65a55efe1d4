"""Entry point of ``ApiFunction`` (every /v1 route, /health, /openapi.json, /docs).

The Powertools resolver keeps the current event on the app object, so one app serves one request at a
time. Lambda never runs two invocations in one process; the local stack runs handlers on threads, so
the lock gives it Lambda's semantics (concurrency comes from more instances, not shared state).
Each request runs with the family's composition root (``ApiDeps``) in the app context, on a resolver
that holds the routers its path could match (``api.app.ApiResolver``: a cold start imports one route
module, not all of them). In Lambda the root reads its settings' view at once and builds the full
``Settings`` at their first read (``wiring.api.lambda_api``): a request served from the caches
imports no pydantic settings model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from replyflow.gc_pause import collector_paused, first_call_paused

# A new instance's imports, and its first request, run with the cyclic collector paused: they build
# what lives as long as the instance (replyflow/gc_pause.py, docs/scaling.md#cold-starts).
with collector_paused(freeze=True):  # the modules live as long as the process
    import api.lean_imports  # noqa: F401 - first: Powertools' umbrella packages without their __init__
    from api import security_headers
    from api.app import app_for
    from api.context import DEPS_CONTEXT_KEY
    from replyflow.observability import clear_tenant, logger, tracer
    from replyflow.wiring.api import ApiDeps, lambda_api

if TYPE_CHECKING:
    from replyflow.wiring.roots import Handler, Roots

_one_at_a_time = threading.Lock()


def make_handler(deps: Callable[[], ApiDeps], *, freeze: bool = False) -> Handler:
    """The entry point over the dependencies ``deps()`` returns (read at each invocation); with
    ``freeze``, what its first call built is kept out of later collections (a Lambda instance's
    entry: ``replyflow/gc_pause.py``)."""

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        root = deps()
        with _one_at_a_time:
            app = app_for(root.view).include_for(event.get("path"))
            app.clear_context()
            app.append_context(**{DEPS_CONTEXT_KEY: root})
            clear_tenant()  # the route binds the caller's tenant; none is left from the last request
            return security_headers.apply(event, app.resolve(event, context))

    return first_call_paused(lambda_handler, freeze=freeze)


def bind(roots: Roots) -> Handler:
    """This function on the local stack's dependencies."""
    return make_handler(lambda: roots.api)


_deps = cache(lambda_api)
lambda_handler = make_handler(_deps, freeze=True)
