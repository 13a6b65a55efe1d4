"""Templates: CRUD validated by ``domain.templates.TemplateContent`` (Instagram's limits), and a
preview that renders variables through the same ``build_message`` the sender uses.

Writes invalidate the templates list and every account's automation cache (the processor caches
automations with their templates resolved). A template used by an automation cannot be deleted. A
tenant has at most ``limits.MAX_TEMPLATES`` templates.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from replyflow.db.models import Template
from replyflow.db.repositories import automations, templates
from replyflow.domain.templates import VARIABLES, Button, QuickReply, TemplateContent, build_message
from replyflow.errors import ConflictError, NotFoundError
from replyflow.ports import Cache
from replyflow.services import cache_keys, limits, write_through
from replyflow.services.access import Principal
from replyflow.services.accounts import automation_account_ids
from replyflow.timestamps import UtcDateTime

SAMPLE_VARIABLES = {
    "username": "jane.doe",
    "comment_text": "LINK please",
    "keyword": "LINK",
    "media_id": "18000000000000000",
    "account_username": "your.account",
}


class TemplateCreate(TemplateContent):
    name: str = Field(min_length=1, max_length=120)


class TemplateUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=120)
    text: str | None = None
    buttons: list[Button] | None = None
    quick_replies: list[QuickReply] | None = None


class TemplateView(BaseModel):
    id: str
    name: str
    text: str
    buttons: list[dict[str, Any]]
    quick_replies: list[dict[str, Any]]
    created_at: UtcDateTime
    updated_at: UtcDateTime


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variables: dict[str, str] = Field(default_factory=dict, description=f"known: {sorted(VARIABLES)}")


class PreviewView(BaseModel):
    message: dict[str, Any] = Field(description="the Send API message object that would be sent")
    text: str
    text_bytes: int
    variables: dict[str, str]


def _view(t: Template) -> TemplateView:
    return TemplateView.model_validate(t, from_attributes=True)


def _content(t: Template) -> TemplateContent:
    return TemplateContent.model_validate(
        {"text": t.text, "buttons": t.buttons or [], "quick_replies": t.quick_replies or []}
    )


def _invalidate(session: Session, cache: Cache, tenant_id: str) -> None:
    account_ids = automation_account_ids(session, tenant_id)

    def drop() -> None:
        cache.delete(cache_keys.templates_key(tenant_id))
        cache_keys.invalidate_automations(cache, tenant_id, account_ids)

    write_through.invalidate(session, drop)


def list_templates(session: Session, cache: Cache, principal: Principal) -> list[TemplateView]:
    return cache_keys.cached_models(
        cache,
        cache_keys.templates_key(principal.tenant_id),
        TemplateView,
        lambda: [_view(t) for t in templates.list_for_tenant(session, principal.tenant_id)],
    )


def _get(session: Session, principal: Principal, template_id: str) -> Template:
    found = templates.get(session, principal.tenant_id, template_id)
    if found is None:
        raise NotFoundError("no such template")
    return found


def get_template(session: Session, principal: Principal, template_id: str) -> TemplateView:
    return _view(_get(session, principal, template_id))


def create(session: Session, cache: Cache, principal: Principal, request: TemplateCreate) -> TemplateView:
    principal.require("admin")
    limits.check_templates(session, principal.tenant_id)
    dumped = request.model_dump(mode="json", exclude_none=True)
    row = Template(
        tenant_id=principal.tenant_id,
        name=request.name,
        text=request.text,
        buttons=dumped.get("buttons", []),
        quick_replies=dumped.get("quick_replies", []),
    )
    session.add(row)
    session.flush()
    _invalidate(session, cache, principal.tenant_id)
    return _view(row)


def update(
    session: Session, cache: Cache, principal: Principal, template_id: str, request: TemplateUpdate
) -> TemplateView:
    principal.require("admin")
    row = _get(session, principal, template_id)
    merged = _content(row).model_dump(mode="json", exclude_none=True)
    changes = request.model_dump(mode="json", exclude_none=True, exclude={"name"})
    merged.update(changes)
    content = TemplateContent.model_validate(merged)  # the limits hold for the result, not just the patch
    dumped = content.model_dump(mode="json", exclude_none=True)
    row.text, row.buttons, row.quick_replies = (
        content.text,
        dumped.get("buttons", []),
        dumped.get("quick_replies", []),
    )
    if request.name is not None:
        row.name = request.name
    session.flush()
    _invalidate(session, cache, principal.tenant_id)
    return _view(row)


def delete(session: Session, cache: Cache, principal: Principal, template_id: str) -> None:
    principal.require("admin")
    row = _get(session, principal, template_id)
    users = [
        a.id
        for a in automations.list_for_tenant(session, principal.tenant_id)
        if any(
            isinstance(v, dict) and v.get("template_id") == template_id for v in (a.actions or {}).values()
        )
    ]
    if users:
        raise ConflictError(
            "this template is used by automations; change them first",
            code="template_in_use",
            details={"automation_ids": users},
        )
    session.delete(row)
    session.flush()
    _invalidate(session, cache, principal.tenant_id)


def render(content: TemplateContent, variables: dict[str, str]) -> PreviewView:
    merged = {**SAMPLE_VARIABLES, **variables}
    message = build_message(content, merged)
    text = message.get("text") or message["attachment"]["payload"]["text"]
    return PreviewView(message=message, text=text, text_bytes=len(text.encode()), variables=merged)


def preview(session: Session, principal: Principal, template_id: str, request: PreviewRequest) -> PreviewView:
    return render(_content(_get(session, principal, template_id)), request.variables)


class DraftPreviewRequest(TemplateContent):
    variables: dict[str, str] = Field(default_factory=dict)


def preview_draft(request: DraftPreviewRequest) -> PreviewView:
    content = TemplateContent.model_validate(
        request.model_dump(mode="json", exclude={"variables"}, exclude_none=True)
    )
    return render(content, request.variables)
