from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from replyflow.db.models import Template


def get(session: Session, tenant_id: str, template_id: str) -> Template | None:
    return session.scalar(select(Template).where(Template.tenant_id == tenant_id, Template.id == template_id))


def get_many(session: Session, tenant_id: str, template_ids: Iterable[str]) -> dict[str, Template]:
    ids = list(set(template_ids))
    if not ids:
        return {}
    rows = session.scalars(select(Template).where(Template.tenant_id == tenant_id, Template.id.in_(ids)))
    return {row.id: row for row in rows}


def list_for_tenant(session: Session, tenant_id: str) -> list[Template]:
    return list(
        session.scalars(select(Template).where(Template.tenant_id == tenant_id).order_by(Template.created_at))
    )


def count_for_tenant(session: Session, tenant_id: str) -> int:
    return (
        session.scalar(select(func.count()).select_from(Template).where(Template.tenant_id == tenant_id)) or 0
    )
