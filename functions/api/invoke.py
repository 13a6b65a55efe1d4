"""Call the API in-process the way API Gateway does: build a REST proxy event, run the REQUEST
authorizer first on the routes template.yaml protects (its ``context`` becomes
``requestContext.authorizer``; a failure is API Gateway's 401 ``{"message": "Unauthorized"}``), then
``api.handler.lambda_handler``. Used by the integration tests and the benchmarks; the local stack's
gateway does the same over HTTP.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

UNAUTHENTICATED_PREFIXES = ("/v1/auth/", "/v1/data-deletion/")
UNAUTHENTICATED_PATHS = frozenset(
    {
        "/health",
        "/openapi.json",
        "/docs",
        "/v1/plans",
        "/v1/accounts/oauth/callback",
        "/v1/data-deletion",
        "/v1/deauthorize",
        "/v1/invitations/accept",
    }
)
AUTHENTICATED_PATHS = frozenset({"/v1/auth/password"})  # under /v1/auth/, but a route of its own
METHOD_ARN = "arn:aws:execute-api:us-east-1:000000000000:local/v1/{method}{path}"
POLICY_TTL_SECONDS = 300


@dataclass(frozen=True)
class InvokeContext:
    """The Lambda context attributes the handlers' Powertools logger reads."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = "local"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


AUTHORIZER_CONTEXT = InvokeContext("AuthorizerFunction")
API_CONTEXT = InvokeContext("ApiFunction")


def _proxy_body(body: Any) -> dict[str, Any]:
    """Bytes travel as API Gateway sends them: text when UTF-8, else base64 with the flag set."""
    if isinstance(body, bytes):
        try:
            return {"body": body.decode("utf-8"), "isBase64Encoded": False}
        except UnicodeDecodeError:
            return {"body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True}
    text = None if body is None else body if isinstance(body, str) else json.dumps(body)
    return {"body": text, "isBase64Encoded": False}


def needs_authorizer(path: str) -> bool:
    if path in AUTHENTICATED_PATHS:
        return True
    if path in UNAUTHENTICATED_PATHS or path.startswith(UNAUTHENTICATED_PREFIXES):
        return False
    return path.startswith("/v1/")


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: Any

    def json(self) -> Any:
        return self.body


@dataclass
class Gateway:
    """``cache_policies`` mimics API Gateway's authorizer result cache (keyed by the header, 300 s)."""

    api: Handler
    authorizer: Handler
    source_ip: str = "127.0.0.1"
    cache_policies: bool = False
    _policies: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    def _authorize(self, method: str, path: str, headers: dict[str, str]) -> dict[str, Any] | None:
        authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if not authorization:
            return None
        cached = self._policies.get(authorization) if self.cache_policies else None
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        event = {
            "type": "REQUEST",
            "methodArn": METHOD_ARN.format(method=method, path=path),
            "headers": headers,
            "httpMethod": method,
            "path": path,
        }
        try:
            result = self.authorizer(event, AUTHORIZER_CONTEXT)
        except Exception:
            return None
        context = dict(result.get("context") or {})
        context["principalId"] = result.get("principalId")
        if self.cache_policies:
            self._policies[authorization] = (time.monotonic() + POLICY_TTL_SECONDS, context)
        return context

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        token: str | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ApiResponse:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        request_context: dict[str, Any] = {
            "identity": {"sourceIp": self.source_ip},
            "stage": "v1",
            "httpMethod": method,
            "path": path + (f"?{urlencode(query)}" if query else ""),
            "requestId": f"local-{time.monotonic_ns()}",
        }
        if needs_authorizer(path):
            context = self._authorize(method, path, all_headers)
            if context is None:
                return ApiResponse(401, {}, {"message": "Unauthorized"})
            request_context["authorizer"] = context
        event = {
            "resource": path,
            "path": path,
            "httpMethod": method,
            "headers": all_headers,
            "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
            "pathParameters": None,
            **_proxy_body(body),
            "requestContext": request_context,
        }
        raw = self.api(event, API_CONTEXT)
        out_headers = {k: v for k, v in (raw.get("headers") or {}).items()}
        for name, values in (raw.get("multiValueHeaders") or {}).items():
            if values:
                out_headers[name] = values[-1]
        text = raw.get("body") or ""
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return ApiResponse(int(raw["statusCode"]), out_headers, parsed)
