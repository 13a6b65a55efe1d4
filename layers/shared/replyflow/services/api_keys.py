"""Tenant API keys: owners create (the secret is returned once), list and revoke them.

Keys act as ``admin`` or ``member`` (never owner: a leaked key must not be able to hand out more keys
or change the subscription). Revoking deletes the authorizer's cached entry at once and writes a
revocation entry (``services.revocation``) that the API checks on every request, so a policy API
Gateway still caches (300 s) no longer gets through. A tenant has at most
``limits.MAX_ACTIVE_API_KEYS`` active keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from replyflow.db.repositories import api_keys
from replyflow.errors import NotFoundError
from replyflow.ports import Cache
from replyflow.services import limits, tokens, write_through
from replyflow.services.access import Principal
from replyflow.services.api_key_auth import invalidate_api_key
from replyflow.services.revocation import Revoker
from replyflow.timestamps import UtcDateTime


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    role: Literal["admin", "member"] = "admin"


class ApiKeyView(BaseModel):
    id: str
    name: str
    prefix: str
    role: str
    created_at: UtcDateTime
    last_used_at: UtcDateTime | None
    revoked_at: UtcDateTime | None


class ApiKeyCreated(ApiKeyView):
    key: str = Field(description="the full key; shown once, store it now")


def _view(key: object) -> ApiKeyView:
    return ApiKeyView.model_validate(key, from_attributes=True)


def list_keys(session: Session, principal: Principal) -> list[ApiKeyView]:
    principal.require("owner")
    return [_view(k) for k in api_keys.list_for_tenant(session, principal.tenant_id)]


def create(session: Session, principal: Principal, request: ApiKeyCreate) -> ApiKeyCreated:
    principal.require("owner")
    limits.check_api_keys(session, principal.tenant_id)
    new = tokens.new_api_key()
    key = api_keys.add(
        session,
        principal.tenant_id,
        name=request.name,
        prefix=new.prefix,
        key_hash=new.key_hash,
        role=request.role,
        created_by=principal.principal_id,
    )
    return ApiKeyCreated(**_view(key).model_dump(), key=new.token)


def revoke(
    session: Session, cache: Cache, revoker: Revoker, principal: Principal, key_id: str, *, now: datetime
) -> ApiKeyView:
    principal.require("owner")
    key = api_keys.revoke(session, principal.tenant_id, key_id, now)
    if key is None:
        raise NotFoundError("no such API key")
    session.flush()
    revoker.api_key(session, principal.tenant_id, key.id)
    prefix = key.prefix
    write_through.invalidate(session, lambda: invalidate_api_key(cache, prefix))
    return _view(key)
