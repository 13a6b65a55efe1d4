"""/v1/api-keys: owners create (secret shown once), list and revoke tenant API keys."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from api.context import deps, principal
from api.responses import documented
from replyflow.clock import utcnow
from replyflow.services import api_keys
from replyflow.services.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyView

router = Router()


@router.get("", tags=["api-keys"], summary="API keys (never their secrets)", responses=documented())
def list_keys() -> list[ApiKeyView]:
    with deps(router).unit_of_work() as session:
        return api_keys.list_keys(session, principal(router))


@router.post(
    "",
    tags=["api-keys"],
    summary="Create an API key; the response is the only time the key is shown",
    responses=documented(201, body=True),
)
def create(body: ApiKeyCreate) -> Response[ApiKeyCreated]:
    with deps(router).unit_of_work() as session:
        created = api_keys.create(session, principal(router), body)
    return Response(201, content_types.APPLICATION_JSON, created)


@router.delete("/<key_id>", tags=["api-keys"], summary="Revoke an API key", responses=documented(200, 404))
def revoke(key_id: str) -> ApiKeyView:
    with deps(router).unit_of_work() as session:
        return api_keys.revoke(
            session, deps(router).cache, deps(router).revoker, principal(router), key_id, now=utcnow()
        )
