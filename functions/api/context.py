"""Request facts the routes need, read from the proxy event: the principal the authorizer put in
``requestContext.authorizer`` (never a token), the client IP, and the composition root the handler
puts in the app context for the request.

The client IP is the source IP, or, on a request through the console's CloudFront distribution
(which bears its secret ``X-Replyflow-Origin``), the viewer's ``X-Replyflow-Viewer-Ip``
(``replyflow.adapters.console_origin``; that module and the secret are loaded only for a request
that bears the origin header)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

from replyflow.observability import bind_tenant
from replyflow.services.access import Principal
from replyflow.wiring.api import ApiDeps

DEPS_CONTEXT_KEY = "deps"
# Set by the console's distribution on every API request (infra/console.yaml), replacing the viewer's.
ORIGIN_HEADER = "X-Replyflow-Origin"
VIEWER_IP_HEADER = "X-Replyflow-Viewer-Ip"


def authorizer_context(router: BaseRouter) -> dict[str, Any] | None:
    context = router.current_event.raw_event.get("requestContext") or {}
    authorizer = context.get("authorizer")
    return authorizer if isinstance(authorizer, dict) else None


def principal(router: BaseRouter) -> Principal:
    """The caller; 401 when the gateway ran no authorizer for this route (never trusted from headers)."""
    found = Principal.from_context(authorizer_context(router))
    bind_tenant(found.tenant_id)
    return found


def client_ip(router: BaseRouter) -> str:
    """The IP the per-IP limits count this request by (login, signup, refresh, password reset,
    invitations): the viewer's only when the console's distribution vouches for the request."""
    context = router.current_event.raw_event.get("requestContext") or {}
    identity = context.get("identity") or {}
    source = str(identity.get("sourceIp") or "unknown")
    origin = header(router, ORIGIN_HEADER)
    if origin is None:
        return source
    viewer = header(router, VIEWER_IP_HEADER)
    return deps(router).console_origin.client_ip(source, origin=origin, viewer_ip=viewer)


def header(router: BaseRouter, name: str) -> str | None:
    wanted = name.lower()
    for key, value in (router.current_event.raw_event.get("headers") or {}).items():
        if key.lower() == wanted and isinstance(value, str):
            return value
    return None


def public_base_url(router: BaseRouter) -> str:
    """This API's address as the caller reached it, without a trailing slash: on API Gateway's own
    domain the stage is part of the URL; on a custom domain (and the local stack) it is not. The
    gateway's ``domainName`` comes first (API Gateway sets it), then the Host header."""
    context = router.current_event.raw_event.get("requestContext") or {}
    host = str(context.get("domainName") or "") or header(router, "Host") or "localhost"
    local = host.startswith(("127.", "localhost"))
    proto = header(router, "X-Forwarded-Proto") or ("http" if local else "https")
    stage = str(context.get("stage") or "")
    prefix = f"/{stage}" if stage and host.endswith(".amazonaws.com") else ""
    return f"{proto}://{host}{prefix}"


def deps(router: BaseRouter) -> ApiDeps:
    """The API's composition root, put in the app's context by the handler for each request."""
    found = router.context.get(DEPS_CONTEXT_KEY)
    if not isinstance(found, ApiDeps):
        raise RuntimeError("the API handler runs every request with its ApiDeps in the app context")
    return found
