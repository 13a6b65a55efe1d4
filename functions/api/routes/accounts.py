"""/v1/accounts: connected Instagram accounts, OAuth connect (and sandbox connect), disconnect."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from api.context import principal
from replyflow.services import accounts, oauth
from replyflow.services.accounts import AccountView
from replyflow.services.oauth import AuthorizeUrl, SandboxConnectRequest
from replyflow.wiring import api as wiring
from replyflow.wiring import core

router = Router()


@router.get("", tags=["accounts"], summary="Connected Instagram accounts")
def list_accounts() -> list[AccountView]:
    with wiring.unit_of_work() as session:
        return accounts.list_accounts(session, principal(router))


@router.get("/oauth/start", tags=["accounts"], summary="Instagram authorize URL with a signed state (admin)")
def oauth_start() -> AuthorizeUrl:
    return oauth.start(wiring.oauth_config(), principal(router))


@router.get(
    "/oauth/callback",
    tags=["accounts"],
    summary="Instagram redirects here; exchanges the code, subscribes webhooks, stores the token",
    security=[],
)
def oauth_callback(
    code: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(max_length=4000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> AccountView:
    with wiring.unit_of_work() as session:
        return oauth.callback(
            session,
            wiring.cache(),
            core.cipher(),
            wiring.instagram_oauth(),
            wiring.oauth_config(),
            code=code,
            state=state,
            error=error,
            requeue=wiring.requeue_parked(),
        )


@router.post("/sandbox", tags=["accounts"], summary="Connect a sandbox account (local and test only; admin)")
def sandbox_connect(body: SandboxConnectRequest) -> Response[AccountView]:
    with wiring.unit_of_work() as session:
        view = oauth.sandbox_connect(
            session,
            wiring.cache(),
            core.cipher(),
            wiring.instagram_oauth(),
            wiring.oauth_config(),
            principal(router),
            body,
            requeue=wiring.requeue_parked(),
        )
    return Response(201, content_types.APPLICATION_JSON, view)


@router.get("/<account_id>", tags=["accounts"], summary="One account")
def get_account(account_id: str) -> AccountView:
    with wiring.unit_of_work() as session:
        return accounts.get_account(session, principal(router), account_id)


@router.delete(
    "/<account_id>", tags=["accounts"], summary="Disconnect (admin): token dropped, automations paused"
)
def disconnect(account_id: str) -> AccountView:
    with wiring.unit_of_work() as session:
        return accounts.disconnect(
            session, wiring.cache(), core.cipher(), wiring.instagram_oauth(), principal(router), account_id
        )
