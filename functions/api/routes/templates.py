"""/v1/templates: CRUD (admin writes) and previews that render variables."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from api.context import deps, principal
from api.responses import documented, no_content
from replyflow.services.templates import (
    DraftPreviewRequest,
    PreviewRequest,
    PreviewView,
    TemplateCreate,
    TemplateUpdate,
    TemplateView,
)

router = Router()


@router.get("", tags=["templates"], summary="Templates (cached)", responses=documented())
def list_templates() -> list[TemplateView]:
    return deps(router).templates.list(principal(router))


@router.post(
    "",
    tags=["templates"],
    summary="Create a template (admin); Instagram's limits are enforced",
    responses=documented(201, 409, body=True),
)
def create(body: TemplateCreate) -> Response[TemplateView]:
    view = deps(router).templates.create(principal(router), body)
    return Response(201, content_types.APPLICATION_JSON, view)


@router.post(
    "/preview",
    tags=["templates"],
    summary="Render an unsaved template with variables",
    responses=documented(200, body=True),
)
def preview_draft(body: DraftPreviewRequest) -> PreviewView:
    principal(router)  # signed in, though the draft touches no tenant data
    return deps(router).templates.preview_draft(body)


@router.get("/<template_id>", tags=["templates"], summary="One template", responses=documented(200, 404))
def get_template(template_id: str) -> TemplateView:
    return deps(router).templates.get(principal(router), template_id)


@router.patch(
    "/<template_id>",
    tags=["templates"],
    summary="Change a template (admin)",
    responses=documented(200, 404, 409, body=True),
)
def update(template_id: str, body: TemplateUpdate) -> TemplateView:
    return deps(router).templates.update(principal(router), template_id, body)


@router.delete(
    "/<template_id>",
    tags=["templates"],
    summary="Delete a template no automation uses (admin)",
    responses=documented(204, 404, 409),
)
def delete(template_id: str) -> Response[Any]:
    deps(router).templates.delete(principal(router), template_id)
    return no_content()


@router.post(
    "/<template_id>/preview",
    tags=["templates"],
    summary="Render a saved template with variables",
    responses=documented(200, 404, body=True),
)
def preview(template_id: str, body: PreviewRequest) -> PreviewView:
    return deps(router).templates.preview(principal(router), template_id, body)
