"""Every error leaves the API as ``{"error": {"code", "message", "details"}}``, mapped here only.

Typed ``ReplyflowError``s carry their code and status; request validation (Powertools) and pydantic
validation raised by services become 422 with field locations; a body that cannot be read (not UTF-8
JSON within ``replyflow.json_input``'s limits) is 400 ``malformed_json`` or 413, another content type
415; an unknown route is 404; anything else is a logged 500 that reveals nothing. The same shape is
the ``ErrorResponse`` schema of every error status in the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFound
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from replyflow.errors import MalformedJsonError, PayloadTooLargeError, RateLimitedError, ReplyflowError
from replyflow.observability import logger

RATE_HEADERS_CONTEXT_KEY = "rate_limit_headers"


# ``defer_build``: built at the first error or for the OpenAPI document, not by every cold start.
class ErrorBody(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(defer_build=True)

    code: str = pydantic.Field(description="stable, machine-readable")
    message: str = pydantic.Field(description="what went wrong, for a person")
    details: Any = pydantic.Field(default=None, description="field errors, limits; null when none")


class ErrorResponse(pydantic.BaseModel):
    """The body of every error the API and the gateway return."""

    model_config = pydantic.ConfigDict(defer_build=True)

    error: ErrorBody


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": {"code": code, "message": message, "details": details}},
        headers=headers,
    )


def _field_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        item = {"loc": list(e.get("loc", ())), "type": e.get("type"), "msg": e.get("msg")}
        out.append({k: v for k, v in item.items() if v is not None})
    return out


def register(app: APIGatewayRestResolver, meter: Callable[[APIGatewayRestResolver], None]) -> None:
    def rate_headers() -> dict[str, str]:
        return dict(app.context.get(RATE_HEADERS_CONTEXT_KEY) or {})

    @app.exception_handler(RateLimitedError)
    def _rate_limited(error: RateLimitedError) -> Response[Any]:
        headers = {**rate_headers(), "Retry-After": str(max(1, int(error.retry_after + 0.999)))}
        if isinstance(error.details, dict):
            headers.update({k: v for k, v in error.details.items() if k.startswith("X-RateLimit-")})
            headers.setdefault("X-RateLimit-Remaining", "0")
        return error_response(error.status, error.code, error.message, error.details, headers)

    @app.exception_handler(ReplyflowError)
    def _typed(error: ReplyflowError) -> Response[Any]:
        if error.status >= 500:
            logger.warning("upstream or internal error", extra={"code": error.code, "details": error.details})
        return error_response(error.status, error.code, error.message, error.details, rate_headers())

    def metered(respond: Callable[[], Response[Any]]) -> Response[Any]:
        """The request was refused while it was read, before the rate-limit middleware: count it too."""
        try:
            meter(app)
        except RateLimitedError as limited:
            return _rate_limited(limited)
        except ReplyflowError as refused:  # a revoked caller: 401 before any 422
            return _typed(refused)
        return respond()

    @app.exception_handler(RequestValidationError)
    def _request_invalid(error: RequestValidationError) -> Response[Any]:
        return metered(
            lambda: error_response(
                422,
                "validation_error",
                "the request is not valid",
                _field_errors(error.errors()),
                rate_headers(),
            )
        )

    @app.exception_handler([MalformedJsonError, PayloadTooLargeError])
    def _body_unreadable(error: ReplyflowError) -> Response[Any]:
        return metered(
            lambda: error_response(error.status, error.code, error.message, error.details, rate_headers())
        )

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported_media(_error: RequestUnsupportedContentType) -> Response[Any]:
        return metered(
            lambda: error_response(
                415, "unsupported_media_type", "send the body as application/json", None, rate_headers()
            )
        )

    @app.exception_handler(pydantic.ValidationError)
    def _model_invalid(error: pydantic.ValidationError) -> Response[Any]:
        details = [{**e, "loc": ["body", *e["loc"]]} for e in _field_errors(error.errors(include_url=False))]
        return error_response(422, "validation_error", "the request is not valid", details, rate_headers())

    @app.not_found
    def _not_found(_error: RouteNotFound) -> Response[Any]:
        return error_response(404, "route_not_found", "no such route")

    @app.exception_handler(ServiceError)
    def _service(error: ServiceError) -> Response[Any]:
        return error_response(error.status_code, "http_error", str(error.msg))

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[Any]:
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "something went wrong on our side; it was logged")
