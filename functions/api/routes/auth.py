"""/v1/auth/* (no gateway authorizer: credentials travel in the body), /v1/me and /v1/me/workspaces.

The exception is ``POST /v1/auth/password`` (change the password), a route of its own in template.yaml
that the gateway authorizes like every /v1 route.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from api.context import client_ip, deps, principal
from api.responses import NO_AUTH, documented, no_content
from replyflow.services.auth import (
    LoginRequest,
    MeView,
    RefreshRequest,
    SignupRequest,
    TokenPair,
    WorkspaceView,
)
from replyflow.services.passwords import (
    PasswordChangeRequest,
    PasswordForgotAccepted,
    PasswordForgotRequest,
    PasswordResetRequest,
)

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
    pair = deps(router).auth.signup(body, ip=client_ip(router))
    return Response(201, content_types.APPLICATION_JSON, pair)


@router.post(
    "/login",
    tags=["auth"],
    summary="Access token (15 min) and a rotating refresh token",
    security=NO_AUTH,
    responses=documented(200, 401, 429, public=True, body=True),
)
def login(body: LoginRequest) -> TokenPair:
    return deps(router).auth.login(body, ip=client_ip(router))


@router.post(
    "/refresh",
    tags=["auth"],
    summary="Rotate a refresh token for a new pair",
    security=NO_AUTH,
    responses=documented(200, 401, 429, public=True, body=True),
)
def refresh(body: RefreshRequest) -> TokenPair:
    return deps(router).auth.refresh(body, ip=client_ip(router))


@router.post(
    "/logout",
    tags=["auth"],
    summary="Revoke the refresh token's whole family",
    security=NO_AUTH,
    responses=documented(204, public=True, body=True),
)
def logout(body: RefreshRequest) -> Response[Any]:
    deps(router).auth.logout(body)
    return no_content()


@router.post(
    "/password",
    tags=["auth"],
    summary="Change the password (current one required); signs out every other session",
    responses=documented(200, 400, body=True),
)
def change_password(body: PasswordChangeRequest) -> TokenPair:
    return deps(router).passwords.change(principal(router), body)


@router.post(
    "/password/forgot",
    tags=["auth"],
    summary="Email a reset link (30 min); the same 202 whether the account exists or not",
    security=NO_AUTH,
    responses=documented(202, 429, public=True, body=True),
)
def forgot_password(body: PasswordForgotRequest) -> Response[PasswordForgotAccepted]:
    answer = deps(router).passwords.forgot(body, ip=client_ip(router))
    return Response(202, content_types.APPLICATION_JSON, answer)


@router.post(
    "/password/reset",
    tags=["auth"],
    summary="Set a new password with an emailed token (single use); signs out every session",
    security=NO_AUTH,
    responses=documented(204, 400, 429, public=True, body=True),
)
def reset_password(body: PasswordResetRequest) -> Response[Any]:
    deps(router).passwords.reset(body, ip=client_ip(router))
    return no_content()


@me_router.get(
    "/me", tags=["auth"], summary="The caller: user or API key, tenant and role", responses=documented()
)
def me() -> MeView:
    return deps(me_router).auth.me(principal(me_router))


@me_router.get(
    "/me/workspaces",
    tags=["auth"],
    summary="The signed-in user's workspaces and role in each (log in with tenant_id to enter one)",
    responses=documented(),
)
def my_workspaces() -> list[WorkspaceView]:
    return deps(me_router).auth.workspaces(principal(me_router))
