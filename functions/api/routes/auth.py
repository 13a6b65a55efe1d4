"""/v1/auth/* (no gateway authorizer: credentials travel in the body) and /v1/me."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from api.context import client_ip, principal
from replyflow.services import auth
from replyflow.services.auth import LoginRequest, MeView, RefreshRequest, SignupRequest, TokenPair
from replyflow.wiring import api as wiring

router = Router()
me_router = Router()
NO_AUTH: list[dict[str, list[str]]] = []


@router.post(
    "/signup",
    tags=["auth"],
    summary="Create a workspace, its owner and a free subscription",
    security=NO_AUTH,
)
def signup(body: SignupRequest) -> Response[TokenPair]:
    with wiring.unit_of_work() as session:
        pair = auth.signup(session, wiring.auth_config(), wiring.rate_limiter(), body, ip=client_ip(router))
    return Response(201, content_types.APPLICATION_JSON, pair)


@router.post(
    "/login", tags=["auth"], summary="Access token (15 min) and a rotating refresh token", security=NO_AUTH
)
def login(body: LoginRequest) -> TokenPair:
    with wiring.unit_of_work() as session:
        return auth.login(session, wiring.auth_config(), wiring.rate_limiter(), body, ip=client_ip(router))


@router.post("/refresh", tags=["auth"], summary="Rotate a refresh token for a new pair", security=NO_AUTH)
def refresh(body: RefreshRequest) -> TokenPair:
    with wiring.unit_of_work() as session:
        return auth.refresh(session, wiring.auth_config(), wiring.rate_limiter(), body, ip=client_ip(router))


@router.post("/logout", tags=["auth"], summary="Revoke the refresh token's whole family", security=NO_AUTH)
def logout(body: RefreshRequest) -> Response[Any]:
    with wiring.unit_of_work() as session:
        auth.logout(session, wiring.auth_config(), body)
    return Response(204, content_types.APPLICATION_JSON, None)


@me_router.get("/me", tags=["auth"], summary="The caller: user or API key, tenant and role")
def me() -> MeView:
    with wiring.unit_of_work() as session:
        return auth.me(session, principal(me_router))
