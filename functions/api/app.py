"""The REST API: one Powertools resolver with validation, one Router per resource.

Built on first use (``app_for(settings)``), not at import, and each router is included when a
request's path first needs it (``ApiResolver.include_for``), so a cold start pays only for what it
uses; ``get_app(settings)`` is the whole API with its OpenAPI document. Routes and middleware read
their dependencies from the ``ApiDeps`` the handler puts in the app context for each request
(``api.context.deps``); services import SQLAlchemy lazily. Every authenticated request passes its
caller's rate limits first (an API key: the plan's requests per minute and per calendar month for the
workspace; a signed-in user: the console's per-user allowance; ``X-RateLimit-*`` on every response,
``X-RateLimit-Allowance`` naming which, 429 + ``Retry-After`` past a limit;
``services.rate_limit_api``) and, in the same Redis round trip, the revocation check
(``services.revocation``): a revoked key, a removed or demoted member or a logged-out session is a 401
on its next request, whatever API Gateway's policy cache holds.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.api_gateway import Route, Router
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from api import context, errors
from api.request_body import JsonBodyResolver
from api.responses import SECURITY_SCHEME
from replyflow.clock import utcnow
from replyflow.services import revocation
from replyflow.services.access import Principal
from replyflow.services.tenant_config import tenant_config

if TYPE_CHECKING:
    from replyflow.settings import Settings
    from replyflow.settings_view import ApiSettings

TITLE = "Replyflow API"
VERSION = "1.0.0"
RATE_HEADERS = [
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Allowance",
    "X-RateLimit-Limit-Month",
    "X-RateLimit-Remaining-Month",
    "X-RateLimit-Reset-Month",
    "Retry-After",
    "X-Next-Cursor",  # GET /v1/contacts/export: the export continues from it
]


def _meter(app: APIGatewayRestResolver) -> None:
    """Refuses a revoked caller (401) and counts the request against its allowance (429 past it), in
    one Redis round trip. Runs once per request: from the middleware, or from the
    422 handler (Powertools validates before any middleware)."""
    if errors.RATE_HEADERS_CONTEXT_KEY in app.context:
        return
    authorizer = context.authorizer_context(app)
    tenant_id = authorizer.get("tenant_id") if authorizer else None
    if isinstance(tenant_id, str) and tenant_id:
        caller = Principal.from_context(authorizer)
        root = context.deps(app)
        # The writer is built (and SQLAlchemy imported) on a cache miss only.
        config = tenant_config(lambda: root.clients.writer_sessions(), root.cache, tenant_id)
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


# The routers in the order the resolver tries them: (module in ``api.routes``, attribute, prefix, the
# paths its routes start with: the literal part of every rule, up to its first ``<``; checked against
# the routes by ``tests/unit/test_api_lazy_routes.py``).
ROUTERS: tuple[tuple[str, str, str | None, tuple[str, ...]], ...] = (
    ("meta", "router", None, ("/health",)),
    ("auth", "router", "/v1/auth", ("/v1/auth",)),
    ("auth", "me_router", "/v1", ("/v1/me",)),
    ("plans", "router", "/v1/plans", ("/v1/plans",)),
    ("subscriptions", "router", "/v1/subscriptions", ("/v1/subscriptions",)),
    ("billing", "router", "/v1/billing", ("/v1/billing",)),
    ("members", "router", "/v1/members", ("/v1/members",)),
    ("invitations", "router", "/v1/invitations", ("/v1/invitations",)),
    ("api_keys", "router", "/v1/api-keys", ("/v1/api-keys",)),
    ("accounts", "router", "/v1/accounts", ("/v1/accounts",)),
    ("templates", "router", "/v1/templates", ("/v1/templates",)),
    ("automations", "router", "/v1/automations", ("/v1/automations",)),
    ("logs", "router", "/v1/logs", ("/v1/logs",)),
    ("stats", "router", "/v1/stats", ("/v1/stats",)),
    ("contacts", "router", "/v1/contacts", ("/v1/contacts",)),
    ("flows", "router", "/v1/flows", ("/v1/flows",)),
    ("meta_callbacks", "router", "/v1", ("/v1/data-deletion", "/v1/deauthorize")),
)
# Served from every router together: the OpenAPI document and Swagger UI.
DOCUMENT_PATHS = frozenset({"/openapi.json", "/docs"})
# What a CORS preflight allows: every method of every route (``tests/unit/test_api_lazy_routes.py``
# checks it against the routes), so a preflight answers the same whichever routers are in yet.
CORS_METHODS = frozenset({"DELETE", "GET", "OPTIONS", "PATCH", "POST"})


class ApiResolver(JsonBodyResolver):
    """The resolver, its routers included on demand: a request brings in only the routers whose
    paths its path starts with (every route that could match it), so a cold start imports one
    route module and its services, not all of them. Routes keep the order of :data:`ROUTERS`
    whatever order they came in, so matching is the same as with every router included; the
    document paths include them all and configure the OpenAPI document."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._included: set[int] = set()
        self._rank: dict[int, int] = {}  # id(route) -> its router's index in ROUTERS
        self._documented = False

    def include_for(self, path: object) -> ApiResolver:
        """Every router a request for ``path`` could match (all of them for anything but a path)."""
        if not isinstance(path, str) or path in DOCUMENT_PATHS:
            return self.include_all()
        self._include(i for i, (_m, _a, _prefix, paths) in enumerate(ROUTERS) if path.startswith(paths))
        return self

    def include_all(self) -> ApiResolver:
        self._include(range(len(ROUTERS)))
        if not self._documented:
            self._document()
            self._documented = True
            self._order(len(ROUTERS))
        return self

    def _include(self, indexes: Iterable[int]) -> None:
        wanted = [i for i in indexes if i not in self._included]
        for index in wanted:
            module, attribute, prefix, _paths = ROUTERS[index]
            router: Router = getattr(importlib.import_module(f"api.routes.{module}"), attribute)
            self.include_router(router, prefix=prefix)
            self._included.add(index)
            self._order(index)
        self._cors_methods = set(CORS_METHODS)

    def _order(self, rank: int) -> None:
        """Ranks the routes not ranked yet as ``rank`` and sorts both lists by rank (stable)."""

        def key(route: Route) -> int:
            return self._rank.setdefault(id(route), rank)

        self._static_routes.sort(key=key)
        self._dynamic_routes.sort(key=key)

    def _document(self) -> None:
        from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server

        from api.routes import meta

        self.configure_openapi(
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
        self.enable_swagger(path="/docs")
        meta.bind(self)


def get_app(settings: Settings) -> ApiResolver:
    """The resolver for ``settings``' CORS policy with every router and the OpenAPI document."""
    return app_for(settings).include_all()


def app_for(settings: Settings | ApiSettings) -> ApiResolver:
    """The resolver for ``settings``' CORS policy, with the routers included so far. One per process:
    the routers are module-level and belong to the last resolver that included them, so a different
    policy rebuilds it."""
    return _build_app(tuple(settings.cors_allow_origins or ["*"]), settings.cors_allow_credentials)


@lru_cache(maxsize=1)
def _build_app(origins: tuple[str, ...], allow_credentials: bool) -> ApiResolver:
    return new_resolver(origins, allow_credentials)


def new_resolver(origins: tuple[str, ...], allow_credentials: bool) -> ApiResolver:
    """A resolver with the error handlers and the rate-limit middleware, and no router yet."""
    cors = CORSConfig(
        allow_origin=origins[0],
        extra_origins=list(origins[1:]),
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        expose_headers=RATE_HEADERS,
        max_age=600,
        allow_credentials=allow_credentials,
    )
    app = ApiResolver(enable_validation=True, cors=cors)
    errors.register(app, meter=_meter)
    app.use(middlewares=[_tenant_rate_limit])
    return app
