"""Per-tenant caps on what a tenant can pile up: members (by plan), API keys and templates.

Each check locks the tenant row before counting, so concurrent creates of one tenant are serialised
and cannot overshoot a cap together. A cap reached is a 409 with a code naming it; the details say
the cap and the current count.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from replyflow.db.repositories import api_keys, invitations, templates, tenants
from replyflow.domain.plans import MAX_MEMBERS, MAX_MEMBERS_DEFAULT
from replyflow.errors import ConflictError

MAX_ACTIVE_API_KEYS = 25
MAX_TEMPLATES = 500


def _reached(current: int, allowed: int, code: str, message: str) -> None:
    if current >= allowed:
        raise ConflictError(message, code=code, details={"allowed": allowed, "current": current})


def _lock(session: Session, tenant_id: str) -> str | None:
    tenant = tenants.get(session, tenant_id, for_update=True)
    return tenant.plan_code if tenant is not None else None


def members_allowed(plan_code: str | None) -> int:
    return MAX_MEMBERS.get(plan_code or "", MAX_MEMBERS_DEFAULT)


def check_members(
    session: Session, tenant_id: str, *, invitations_pending_at: datetime | None = None
) -> None:
    """With ``invitations_pending_at``, the invitations pending then count as members (an invite must
    not promise a seat the plan cannot give); accepting one counts the members alone."""
    allowed = members_allowed(_lock(session, tenant_id))
    pending = (
        len(invitations.pending(session, tenant_id, invitations_pending_at))
        if invitations_pending_at is not None
        else 0
    )
    _reached(
        tenants.member_count(session, tenant_id) + pending,
        allowed,
        "member_limit_reached",
        f"this workspace's plan allows {allowed} members; remove one or upgrade",
    )


def check_api_keys(session: Session, tenant_id: str) -> None:
    _lock(session, tenant_id)
    _reached(
        api_keys.active_count(session, tenant_id),
        MAX_ACTIVE_API_KEYS,
        "api_key_limit_reached",
        f"a workspace can have {MAX_ACTIVE_API_KEYS} active API keys; revoke one first",
    )


def check_templates(session: Session, tenant_id: str) -> None:
    _lock(session, tenant_id)
    _reached(
        templates.count_for_tenant(session, tenant_id),
        MAX_TEMPLATES,
        "template_limit_reached",
        f"a workspace can have {MAX_TEMPLATES} templates; delete one first",
    )
