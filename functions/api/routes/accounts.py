"""/v1/accounts: connected Instagram accounts, OAuth connect (and sandbox connect), disconnect, and on
a sandbox stack (``SANDBOX_TOOLS``) a test comment on an account (``services.sandbox_tools``).

OAuth: ``/oauth/start`` and ``/oauth/complete`` are authenticated; the unauthenticated ``/oauth/callback``
only shows what Instagram sent (see ``services.oauth`` for why it must never connect).
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from api.context import deps, header, principal, public_base_url
from api.responses import NO_AUTH, documented
from replyflow.services.accounts import AccountView
from replyflow.services.oauth import AuthorizeUrl, CallbackLanding, CompleteRequest, SandboxConnectRequest
from replyflow.services.sandbox_tools import SandboxCommentRequest, SandboxCommentSent

router = Router()


def _callback_responses() -> dict[int, OpenAPIResponse]:
    responses = documented(200, 400, public=True)
    responses[200] = {
        "description": "What Instagram sent: an HTML page, or JSON with `Accept: application/json`",
        "content": {
            "application/json": {"model": CallbackLanding},
            "text/html": {"schema": {"type": "string"}},
        },
    }
    return responses


@router.get("", tags=["accounts"], summary="Connected Instagram accounts", responses=documented())
def list_accounts() -> list[AccountView]:
    return deps(router).accounts.list(principal(router))


@router.get(
    "/oauth/start",
    tags=["accounts"],
    summary="Instagram authorize URL with a signed state (admin)",
    responses=documented(),
)
def oauth_start() -> AuthorizeUrl:
    return deps(router).oauth.start(principal(router), public_base_url(router))


@router.post(
    "/oauth/complete",
    tags=["accounts"],
    summary="Finish Instagram Login with the code and state from the redirect (admin; the user who started)",
    description="201 with the account. Refused, and nothing connected: 422 `oauth_invalid_state` (tampered "
    "or expired), 403 `oauth_state_mismatch` (started by another user or workspace), 409 `oauth_state_used` "
    "(a state completes once).",
    responses=documented(201, 402, 409, 502, body=True),
)
def oauth_complete(body: CompleteRequest) -> Response[AccountView]:
    view = deps(router).oauth.complete(principal(router), body, public_base_url(router))
    return Response(201, content_types.APPLICATION_JSON, view)


@router.get(
    "/oauth/callback",
    tags=["accounts"],
    summary="Instagram redirects here: a page with the code and state to finish with /oauth/complete "
    "(connects nothing; JSON with Accept: application/json)",
    security=NO_AUTH,
    responses=_callback_responses(),
)
def oauth_callback(
    code: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(max_length=4000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_reason: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response[CallbackLanding | str]:
    service = deps(router).oauth
    landing = service.callback_landing(
        public_base_url(router),
        code=code,
        state=state,
        error=error,
        error_reason=error_reason,
        error_description=error_description,
    )
    # The URL carries a live code: never cached, never sent on as a Referer, never framed.
    headers = {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    if _wants_json(header(router, "Accept")):
        return Response(200, content_types.APPLICATION_JSON, landing, headers=headers)
    headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    )
    return Response(200, "text/html; charset=utf-8", service.callback_page(landing), headers=headers)


def _wants_json(accept: str | None) -> bool:
    media = [part.split(";", 1)[0].strip().lower() for part in (accept or "").split(",")]
    return "application/json" in media and "text/html" not in media


@router.post(
    "/sandbox",
    tags=["accounts"],
    summary="Connect a sandbox account (local and test only; admin)",
    responses=documented(201, 402, 404, 409, 502, body=True),
)
def sandbox_connect(body: SandboxConnectRequest) -> Response[AccountView]:
    view = deps(router).oauth.sandbox_connect(principal(router), body, public_base_url(router))
    return Response(201, content_types.APPLICATION_JSON, view)


@router.get("/<account_id>", tags=["accounts"], summary="One account", responses=documented(200, 404))
def get_account(account_id: str) -> AccountView:
    return deps(router).accounts.get(principal(router), account_id)


@router.delete(
    "/<account_id>",
    tags=["accounts"],
    summary="Disconnect (admin): token dropped, automations paused",
    responses=documented(200, 404),
)
def disconnect(account_id: str) -> AccountView:
    return deps(router).accounts.disconnect(principal(router), account_id)


@router.post(
    "/<account_id>/test-comments",
    tags=["accounts"],
    summary="Send a test comment to the account (sandbox stacks only; admin)",
    description="Local and test stacks whose Graph API is the Instagram sandbox (`SANDBOX_TOOLS`): the "
    "comment is registered with the sandbox, then its webhook event goes through the webhook's routing "
    "and queues to the processor, like a comment Meta delivers. 202 with the comment. 404 "
    "`sandbox_tools_disabled` on any other stack, 404 `not_found` for an account of another workspace, "
    "409 `account_disconnected`, 502 `sandbox_unavailable` when the sandbox does not answer.",
    responses=documented(202, 404, 409, 502, body=True),
)
def send_test_comment(account_id: str, body: SandboxCommentRequest) -> Response[SandboxCommentSent]:
    sent = deps(router).sandbox_tools.send_comment(principal(router), account_id, body)
    return Response(202, content_types.APPLICATION_JSON, sent)
