"""/v1/auth/* (no gateway authorizer: credentials travel in the body) and /v1/me."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from api.context import client_ip, principal
from api.responses import NO_AUTH, documented, no_content
from replyflow.services import auth
from replyflow.services.auth import LoginRequest, MeView, RefreshRequest, SignupRequest, TokenPair
from replyflow.wiring import api as wiring

router = Router()
me_router = Router()


@router.post(
    "/signup",
    tags=["auth"],
    summary="Create a workspace, its owner and a free subscription",
    security=NO_AUTH,
    responses=documented(201, 409, 429, public=True, body=True),
)
def signup(body: SignupRequest) -> Response[TokenPair]:
    with wiring.unit_of_work() as session:
        pair = auth.signup(session, wiring.auth_config(), wiring.rate_limiter(), body, ip=client_ip(router))
    return Response(201, content_types.APPLICATION_JSON, pair)


@router.post(
    "/login",
    tags=["auth"],
    summary="Access token (15 min) and a rotating refresh token",
    security=NO_AUTH,
    responses=documented(200, 401, 429, public=True, body=True),
)
def login(body: LoginRequest) -> TokenPair:
    with wiring.unit_of_work() as session:
        return auth.login(session, wiring.auth_config(), wiring.rate_limiter(), body, ip=client_ip(router))


@router.post(
    "/refresh",
    tags=["auth"],
    summary="Rotate a refresh token for a new pair",
    security=NO_AUTH,
    responses=documented(200, 401, 429, public=True, body=True),
)
def refresh(body: RefreshRequest) -> TokenPair:
    with wiring.unit_of_work() as session:
        return auth.refresh(session, wiring.auth_config(), wiring.rate_limiter(), body, ip=client_ip(router))


@router.post(
    "/logout",
    tags=["auth"],
    summary="Revoke the refresh token's whole family",
    security=NO_AUTH,
    responses=documented(204, public=True, body=True),
)
def logout(body: RefreshRequest) -> Response[Any]:
    with wiring.unit_of_work() as session:
        auth.logout(session, body)
    return no_content()


@me_router.get(
    "/me", tags=["auth"], summary="The caller: user or API key, tenant and role", responses=documented()
)
def me() -> MeView:
    with wiring.unit_of_work() as session:
        return auth.me(session, principal(me_router))
