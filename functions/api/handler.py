"""Entry point of ``ApiFunction`` (every /v1 route, /health, /openapi.json, /docs)."""

from __future__ import annotations

from typing import Any

from api.app import get_app


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return get_app().resolve(event, context)
