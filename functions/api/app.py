"""The REST API: one Powertools resolver with validation, one Router per resource.

Built on first use (``get_app(settings)``), not at import, so a cold start pays only for what it
uses; routes and middleware read their dependencies from the ``ApiDeps`` the handler puts in the app
context for each request (``api.context.deps``); services import SQLAlchemy lazily. Every
authenticated request passes the per-tenant rate limits first (plan's requests per minute and per
calendar month, ``X-RateLimit-*`` on every response, 429 + ``Retry-After`` past either) and, in the
same Redis round trip, the revocation check (``services.revocation``): a revoked key, a removed or
demoted member or a logged-out session is a 401 on its next request, whatever API Gateway's policy
cache holds.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server

from api import context, errors
from api.request_body import JsonBodyResolver
from api.responses import SECURITY_SCHEME
from api.routes import (
    accounts,
    api_keys,
    auth,
    automations,
    contacts,
    flows,
    invitations,
    logs,
    members,
    meta,
    meta_callbacks,
    plans,
    stats,
    subscriptions,
    templates,
)
from replyflow.clock import utcnow
from replyflow.services import revocation
from replyflow.services import subscriptions as subscriptions_service
from replyflow.services.access import Principal
from replyflow.settings import Settings

TITLE = "Replyflow API"
VERSION = "1.0.0"
RATE_HEADERS = [
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Limit-Month",
    "X-RateLimit-Remaining-Month",
    "X-RateLimit-Reset-Month",
    "Retry-After",
    "X-Next-Cursor",  # GET /v1/contacts/export: the export continues from it
]


def _meter(app: APIGatewayRestResolver) -> None:
    """Refuses a revoked caller (401) and counts the request against the tenant's per-minute budget
    (429 past it), in one Redis round trip. Runs once per request: from the middleware, or from the
    422 handler (Powertools validates before any middleware)."""
    if errors.RATE_HEADERS_CONTEXT_KEY in app.context:
        return
    authorizer = context.authorizer_context(app)
    tenant_id = authorizer.get("tenant_id") if authorizer else None
    if isinstance(tenant_id, str) and tenant_id:
        caller = Principal.from_context(authorizer)
        root = context.deps(app)
        config = subscriptions_service.tenant_config(root.clients.writer_sessions, root.cache, tenant_id)
        per_minute = int(config.get("api_requests_per_minute") or 60)
        now = utcnow()
        budget = revocation.admit(
            root.limiter,
            root.revoker,
            caller,
            per_minute,
            root.verify_principal,
            plan_code=config.get("plan_code"),
            now=now,
        )
        app.append_context(**{errors.RATE_HEADERS_CONTEXT_KEY: budget.headers()})
        refusal = budget.refusal(now)
        if refusal is not None:
            raise refusal


def _tenant_rate_limit(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    _meter(app)
    response = next_middleware(app)
    for name, value in (app.context.get(errors.RATE_HEADERS_CONTEXT_KEY) or {}).items():
        response.headers.setdefault(name, value)
    return response


def get_app(settings: Settings) -> APIGatewayRestResolver:
    """The resolver for ``settings``' CORS policy. One per process: the routers are module-level and
    belong to the last resolver that included them, so a different policy rebuilds it."""
    return _build_app(tuple(settings.cors_allow_origins or ["*"]), settings.cors_allow_credentials)


@lru_cache(maxsize=1)
def _build_app(origins: tuple[str, ...], allow_credentials: bool) -> APIGatewayRestResolver:
    cors = CORSConfig(
        allow_origin=origins[0],
        extra_origins=list(origins[1:]),
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        expose_headers=RATE_HEADERS,
        max_age=600,
        allow_credentials=allow_credentials,
    )
    app = JsonBodyResolver(enable_validation=True, cors=cors)
    errors.register(app, meter=_meter)
    app.use(middlewares=[_tenant_rate_limit])
    for router, prefix in (
        (meta.router, None),
        (auth.router, "/v1/auth"),
        (auth.me_router, "/v1"),
        (plans.router, "/v1/plans"),
        (subscriptions.router, "/v1/subscriptions"),
        (members.router, "/v1/members"),
        (invitations.router, "/v1/invitations"),
        (api_keys.router, "/v1/api-keys"),
        (accounts.router, "/v1/accounts"),
        (templates.router, "/v1/templates"),
        (automations.router, "/v1/automations"),
        (logs.router, "/v1/logs"),
        (stats.router, "/v1/stats"),
        (contacts.router, "/v1/contacts"),
        (flows.router, "/v1/flows"),
        (meta_callbacks.router, "/v1"),
    ):
        app.include_router(router, prefix=prefix)
    app.configure_openapi(
        title=TITLE,
        version=VERSION,
        description="Instagram reply automation. Authenticate with `Authorization: Bearer <access JWT>` "
        "from /v1/auth/login, or `Bearer rfk_...` (a tenant API key). Every error, from the gateway or "
        "the API, is an `ErrorResponse`; every date-time is UTC with a `Z`.",
        servers=[Server(url="/")],
        security_schemes={
            SECURITY_SCHEME: HTTPBearer(
                bearerFormat="JWT or rfk_ API key",
                description="An access JWT from /v1/auth/login, or a tenant API key (rfk_...)",
            )
        },
        security=[{SECURITY_SCHEME: []}],
    )
    app.enable_swagger(path="/docs")
    meta.bind(app)
    return app
