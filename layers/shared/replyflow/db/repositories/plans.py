from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from replyflow.db.models import Plan, Tenant
from replyflow.domain.plans import PLANS


def seed_plans(session: Session) -> None:
    """Idempotent: inserts missing plans and brings existing ones to the catalogue's values."""
    existing = {plan.code: plan for plan in session.scalars(select(Plan))}
    for values in PLANS:
        plan = existing.get(values["code"])
        if plan is None:
            session.add(Plan(**values))
        else:
            for field, value in values.items():
                setattr(plan, field, value)
    session.flush()


def list_plans(session: Session) -> list[Plan]:
    return list(session.scalars(select(Plan).order_by(Plan.price_cents)))


def get_plan(session: Session, code: str) -> Plan | None:
    return session.get(Plan, code)


def plan_for_tenant(session: Session, tenant_id: str) -> Plan:
    plan = session.scalar(
        select(Plan).join(Tenant, Tenant.plan_code == Plan.code).where(Tenant.id == tenant_id)
    )
    if plan is None:
        raise LookupError(f"tenant {tenant_id} has no plan")
    return plan
