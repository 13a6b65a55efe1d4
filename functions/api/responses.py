"""What each operation may answer, declared on its route so the OpenAPI document tells the truth.

``documented(201, 404, 409)`` is the ``responses=`` of a route: the success status (its schema is the
route's return type; 204 has no content) and every error status it can return, each with the one
``ErrorResponse`` schema. The statuses every route shares are added here, not per route:

- 422: request validation (Powertools would otherwise document its own body, which we never send);
- authenticated routes: 401 (no or bad credentials, from the gateway's authorizer), 403 (the policy or
  the role refuses) and 429 (the caller's allowance: the plan's for an API key, the console's for a user);
- routes with a body: 400 (``malformed_json``), 413 (over ``MAX_BODY_BYTES``), 415 (not JSON).

``NO_AUTH`` (``[{}]``: one requirement that needs nothing) marks the public routes; the app's default is
the bearer scheme. ``no_content()`` is the one way a route answers 204: no body, no content type.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from api.errors import ErrorResponse

NO_AUTH: list[dict[str, list[str]]] = [{}]
SECURITY_SCHEME = "bearerAuth"

_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    202: "Accepted: the work goes on in the background",
    204: "No content",
    400: "The body is not UTF-8 JSON within the limits (`malformed_json`), or the request is refused",
    401: "No or invalid credentials",
    402: "The plan's limit is reached (`plan_limit_reached`)",
    403: "The gateway's policy or the caller's role refuses the request",
    404: "No such resource in the caller's workspace",
    409: "Conflicts with the current state",
    413: "The body is too large",
    415: "The body is not application/json",
    422: "The request is not valid: `details` lists the fields",
    429: "Rate limited; `Retry-After` says when to retry",
    502: "Instagram, the payment provider or the local sandbox refused or failed the call",
}


def documented(
    success: int = 200, *errors: int, public: bool = False, body: bool = False, model: type | None = None
) -> dict[int, OpenAPIResponse]:
    """``model``: the success body when the route's return type is wider (a union with the error)."""
    statuses = {422, *errors}
    if not public:
        statuses |= {401, 403, 429}
    if body:
        statuses |= {400, 413, 415}
    out: dict[int, OpenAPIResponse] = {}
    if success == 204:
        out[204] = {"description": _DESCRIPTIONS[204], "content": {}}
    elif model is not None:
        content: dict[str, Any] = {"application/json": {"model": model}}
        out[success] = {"description": _DESCRIPTIONS.get(success, "OK"), "content": content}
    else:
        out[success] = {"description": _DESCRIPTIONS.get(success, "OK")}
    for status in sorted(statuses):
        out[status] = {
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {"application/json": {"model": ErrorResponse}},
        }
    return out


def no_content() -> Response[Any]:
    return Response(204, None, None)
