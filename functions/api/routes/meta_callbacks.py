"""Meta's required callbacks (public, form-encoded as Meta sends them) and the deletion status page:
``POST /v1/data-deletion``, ``GET /v1/data-deletion/{code}``, ``POST /v1/deauthorize``. The
``signed_request`` is the caller's credential; ``services.meta_callbacks`` verifies it."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Form, Path

from api.context import deps, public_base_url
from api.responses import NO_AUTH, documented
from replyflow.services.meta_callbacks import (
    MAX_SIGNED_REQUEST,
    DeauthorizeResult,
    DeletionReceipt,
    DeletionStatus,
)

router = Router()

SignedRequestField = Annotated[
    str,
    Form(
        max_length=MAX_SIGNED_REQUEST,
        description="`base64url(HMAC-SHA256 signature).base64url(JSON payload)`, signed with the app secret",
    ),
]


def _status_url() -> str:
    return f"{public_base_url(router)}/v1/data-deletion/{{code}}"


@router.post(
    "/data-deletion",
    tags=["meta"],
    summary="Meta's data deletion callback: deletes the Instagram user's data in every workspace",
    description="Form-encoded `signed_request`. Answers `{url, confirmation_code}` as Meta expects; "
    "400 `invalid_signed_request` when the signature or payload is not valid.",
    security=NO_AUTH,
    responses=documented(200, 400, public=True, body=True),
)
def data_deletion(signed_request: SignedRequestField) -> DeletionReceipt:
    return deps(router).meta_callbacks.request_deletion(signed_request, status_url=_status_url())


@router.get(
    "/data-deletion/<code>",
    tags=["meta"],
    summary="The status of a data deletion request, by its confirmation code",
    security=NO_AUTH,
    responses=documented(200, 404, public=True),
)
def data_deletion_status(code: Annotated[str, Path(max_length=64)]) -> DeletionStatus:
    return deps(router).meta_callbacks.deletion_status(code)


@router.post(
    "/deauthorize",
    tags=["meta"],
    summary="Meta's deauthorize callback: the Instagram user's accounts are disconnected, tokens wiped",
    description="Form-encoded `signed_request`; 400 `invalid_signed_request` when it is not valid.",
    security=NO_AUTH,
    responses=documented(200, 400, public=True, body=True),
)
def deauthorize(signed_request: SignedRequestField) -> DeauthorizeResult:
    return deps(router).meta_callbacks.deauthorize(signed_request)
