"""Call the API in-process through the local gateway, without a socket: the tests' and benches' client.

:func:`api_gateway` is the template-driven :class:`~local.gateway.LocalGateway` over the given API and
authorizer entry points (usually ``make_handler(lambda: deps)`` of each), so requests see what they
see on the local stack and on API Gateway: the template's routes and their authorization, the
authorizer's policy cache, the gateway's own 401/403/404. :class:`ApiClient` turns a method, a path and
a JSON body into an :class:`~local.gateway.HttpRequest` from one source IP and decodes the answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlencode

from local.gateway import HttpRequest, LocalGateway
from local.lambda_context import Handler, LambdaFunction
from local.template import SamTemplate, load_template


@cache
def _template() -> SamTemplate:
    return load_template()


def api_gateway(api: Handler, authorizer: Handler) -> LocalGateway:
    """The gateway of template.yaml with ``ApiFunction`` and ``AuthorizerFunction`` bound to these."""
    template = _template()
    functions = {
        "ApiFunction": LambdaFunction(template.function("ApiFunction"), api),
        "AuthorizerFunction": LambdaFunction(template.function("AuthorizerFunction"), authorizer),
    }
    return LocalGateway(template, functions)


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: Any

    def json(self) -> Any:
        return self.body


def _body(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")


@dataclass
class ApiClient:
    """One caller of the API through ``gateway`` (its IP is ``requestContext.identity.sourceIp``)."""

    gateway: LocalGateway
    source_ip: str = "127.0.0.1"

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
        target = path + (f"?{urlencode(query)}" if query else "")
        request = HttpRequest(method, target, list(all_headers.items()), _body(body), self.source_ip)
        raw = self.gateway.handle(request)
        out_headers = dict(raw.headers)  # the last value of a repeated header
        text = raw.body.decode("utf-8", errors="replace")
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return ApiResponse(raw.status, out_headers, parsed)
