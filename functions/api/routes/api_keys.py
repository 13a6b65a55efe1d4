"""/v1/api-keys: owners create (secret shown once), list and revoke tenant API keys."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from api.context import deps, principal
from api.responses import documented
from replyflow.services.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyView

router = Router()


@router.get("", tags=["api-keys"], summary="API keys (never their secrets)", responses=documented())
def list_keys() -> list[ApiKeyView]:
    return deps(router).api_keys.list(principal(router))


@router.post(
    "",
    tags=["api-keys"],
    summary="Create an API key; the response is the only time the key is shown",
    responses=documented(201, body=True),
)
def create(body: ApiKeyCreate) -> Response[ApiKeyCreated]:
    created = deps(router).api_keys.create(principal(router), body)
    return Response(201, content_types.APPLICATION_JSON, created)


@router.delete("/<key_id>", tags=["api-keys"], summary="Revoke an API key", responses=documented(200, 404))
def revoke(key_id: str) -> ApiKeyView:
    return deps(router).api_keys.revoke(principal(router), key_id)
