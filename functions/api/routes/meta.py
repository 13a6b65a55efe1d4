"""Unauthenticated plumbing: health and the OpenAPI document (Swagger UI is enabled on the app)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

router = Router()


@router.get("/health", include_in_schema=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


def bind(app: APIGatewayRestResolver) -> None:
    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> Response[Any]:
        body = app.get_openapi_json_schema()  # from app.configure_openapi, as Swagger UI at /docs
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=body)
