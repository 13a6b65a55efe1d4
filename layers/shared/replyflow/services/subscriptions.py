"""Plans, the tenant's configuration and its subscription.

Invariants:
- plan changes hold the tenant row lock (``SELECT ... FOR UPDATE``) from the limit check to the
  commit, so concurrent changes serialize and a downgrade check cannot race a connect or a create;
- a downgrade is refused while the tenant is over the new plan's limits, naming each one;
- outside local/test the provider is Stripe: a paid plan is refused with ``payment_required`` (402:
  checkout is the way, services/billing.py), a move to free is Stripe's cancel at period end;
- ``POST /v1/subscriptions`` is idempotent under ``Idempotency-Key`` (see :func:`change_plan_idempotent`):
  the key is reserved by inserting it (the primary key is the lock), the operation and the stored
  response commit together, the same key with the same body replays, with another body is refused;
- writes invalidate ``tenant_config`` and the account routing entries (the queue priority moves).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from replyflow.db.engine import session_scope
from replyflow.db.models import Plan, Subscription
from replyflow.db.repositories import accounts, automations, idempotency, plans, tenants
from replyflow.db.repositories import subscriptions as repo
from replyflow.errors import ConflictError, NotFoundError, ReplyflowError, ValidationError
from replyflow.ports import BillingProvider, Cache
from replyflow.services import cache_keys, limits, write_through
from replyflow.services.access import Principal
from replyflow.services.accounts import connected_count
from replyflow.timestamps import UtcDateTime

SCOPE = "subscriptions.change"
IDEMPOTENCY_WAIT_SECONDS = 3.0
PERIOD = timedelta(days=30)


class PlanView(BaseModel):
    code: str
    name: str
    price_cents: int
    max_accounts: int
    max_automations: int
    monthly_dm_quota: int
    log_retention_days: int
    api_requests_per_minute: int
    queue_priority: str


class SubscriptionView(BaseModel):
    id: str
    plan_code: str
    status: str
    provider: str
    current_period_start: UtcDateTime
    current_period_end: UtcDateTime
    cancel_at_period_end: bool
    canceled_at: UtcDateTime | None
    plan: PlanView


class ChangePlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_code: str = Field(min_length=1, max_length=32)


def _plan_view(plan: Plan) -> PlanView:
    return PlanView.model_validate(plan, from_attributes=True)


def list_plans(session: Session, cache: Cache) -> list[PlanView]:
    return cache_keys.cached_models(
        cache, cache_keys.PLANS_KEY, PlanView, lambda: [_plan_view(p) for p in plans.list_plans(session)]
    )


def load_tenant_config(session_factory: Callable[[], Session], tenant_id: str) -> dict[str, Any]:
    """The database's half of ``services.tenant_config.tenant_config`` (a cache miss)."""
    session = session_factory()
    try:
        tenant = tenants.get(session, tenant_id)
        if tenant is None:
            raise NotFoundError("no such tenant")
        plan = plans.plan_for_tenant(session, tenant_id)
        config = {"tenant_id": tenant.id, "status": tenant.status, **_plan_view(plan).model_dump()}
        config["plan_code"] = plan.code
    finally:
        session.close()
    return config


def _view(session: Session, sub: Subscription) -> SubscriptionView:
    plan = plans.get_plan(session, sub.plan_code)
    assert plan is not None
    data = {c: getattr(sub, c) for c in SubscriptionView.model_fields if c != "plan"}
    return SubscriptionView(**data, plan=_plan_view(plan))


def current(session: Session, principal: Principal) -> SubscriptionView:
    sub = repo.current(session, principal.tenant_id)
    if sub is None:
        raise NotFoundError("this workspace has no active subscription")
    return _view(session, sub)


def _over_limits(session: Session, tenant_id: str, plan: Plan) -> list[dict[str, Any]]:
    over = []
    n_accounts = connected_count(session, tenant_id)  # disconnected rows stay for their logs only
    if n_accounts > plan.max_accounts:
        over.append({"limit": "max_accounts", "allowed": plan.max_accounts, "current": n_accounts})
    n_automations = automations.count_for_tenant(session, tenant_id)
    if n_automations > plan.max_automations:
        over.append({"limit": "max_automations", "allowed": plan.max_automations, "current": n_automations})
    n_members, max_members = tenants.member_count(session, tenant_id), limits.members_allowed(plan.code)
    if n_members > max_members:
        over.append({"limit": "max_members", "allowed": max_members, "current": n_members})
    return over


def _invalidate_tenant(session: Session, cache: Cache, tenant_id: str) -> None:
    ig_ids = [a.ig_user_id for a in accounts.list_for_tenant(session, tenant_id)]
    write_through.invalidate(session, lambda: cache_keys.invalidate_tenant(cache, tenant_id, ig_ids))


def change_plan(
    session: Session,
    cache: Cache,
    billing: BillingProvider,
    principal: Principal,
    request: ChangePlanRequest,
    *,
    now: datetime,
) -> SubscriptionView:
    principal.require("owner")
    tenant = tenants.get(session, principal.tenant_id, for_update=True)
    if tenant is None:
        raise NotFoundError("no such tenant")
    plan = plans.get_plan(session, request.plan_code)
    if plan is None:
        raise ValidationError(f"unknown plan {request.plan_code!r}", code="unknown_plan")
    existing = repo.current(session, tenant.id)
    if existing is not None and existing.plan_code == plan.code and not existing.cancel_at_period_end:
        return _view(session, existing)
    over = _over_limits(session, tenant.id, plan)
    if over:
        names = ", ".join(f"{o['limit']} ({o['current']} > {o['allowed']})" for o in over)
        raise ConflictError(
            f"cannot move to {plan.code}: the workspace is over the plan's limits: {names}; "
            "remove some first",
            code="over_plan_limits",
            details=over,
        )
    if existing is not None and existing.provider == "stripe" and plan.price_cents == 0:
        # A paid Stripe subscription moves to free at the end of its period: Stripe ends it, and its
        # customer.subscription.deleted event moves the tenant (services/billing.py).
        billing.cancel(tenant.id, existing.provider_ref)
        existing.cancel_at_period_end = True
        existing.canceled_at = now
        session.flush()
        _invalidate_tenant(session, cache, tenant.id)
        return _view(session, existing)
    change = billing.change_plan(tenant.id, plan.code)  # Stripe: PaymentRequiredError (checkout)
    if existing is not None:
        existing.status = "replaced"
        existing.canceled_at = now
    sub = repo.add(
        session,
        Subscription(
            tenant_id=tenant.id,
            plan_code=plan.code,
            status="active",
            provider=change.provider,
            provider_ref=change.provider_ref,
            current_period_start=now,
            current_period_end=now + PERIOD,
        ),
    )
    tenant.plan_code = plan.code
    session.flush()
    _invalidate_tenant(session, cache, tenant.id)
    return _view(session, sub)


def cancel(
    session: Session, cache: Cache, billing: BillingProvider, principal: Principal, *, now: datetime
) -> SubscriptionView:
    """Cancels at the end of the period (the scheduled job then moves the tenant to free)."""
    principal.require("owner")
    tenants.get(session, principal.tenant_id, for_update=True)
    sub = repo.current(session, principal.tenant_id)
    if sub is None:
        raise NotFoundError("this workspace has no active subscription")
    if sub.plan_code == "free":
        raise ConflictError("the free plan has nothing to cancel", code="nothing_to_cancel")
    if not sub.cancel_at_period_end:
        billing.cancel(principal.tenant_id, sub.provider_ref)
        sub.cancel_at_period_end = True
        sub.canceled_at = now
        session.flush()
        _invalidate_tenant(session, cache, principal.tenant_id)
    return _view(session, sub)


def settle_period_ends(
    sessions: sessionmaker[Session], cache: Cache, *, now: datetime, limit: int = 500
) -> dict[str, int]:
    """Ends due periods (the usage-rollover job runs this): a subscription cancelled at period end
    becomes ``canceled`` and the tenant moves to the free plan; any other one renews for a period.
    Each tenant is settled in its own transaction under its row lock, so it is safe to re-run."""
    counts = {"renewed": 0, "downgraded": 0}
    with session_scope(sessions) as session:
        due = repo.due_for_period_end(session, now, limit)
    for tenant_id, sub_id in due:
        with session_scope(sessions) as session:
            tenant = tenants.get(session, tenant_id, for_update=True)
            sub = repo.current(session, tenant_id)
            if tenant is None or sub is None or sub.id != sub_id or sub.current_period_end > now:
                continue  # settled or changed meanwhile
            if sub.cancel_at_period_end:
                sub.status = "canceled"
                repo.add(
                    session,
                    Subscription(
                        tenant_id=tenant_id,
                        plan_code="free",
                        status="active",
                        provider="manual",
                        current_period_start=sub.current_period_end,
                        current_period_end=sub.current_period_end + PERIOD,
                    ),
                )
                tenant.plan_code = "free"
                session.flush()
                _invalidate_tenant(session, cache, tenant_id)
                counts["downgraded"] += 1
            else:
                sub.current_period_start = sub.current_period_end
                sub.current_period_end = sub.current_period_end + PERIOD
                counts["renewed"] += 1
    return counts


def request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class IdempotentResult(BaseModel):
    status: int
    body: Any
    replayed: bool


def change_plan_idempotent(
    sessions: sessionmaker[Session],
    cache: Cache,
    billing: BillingProvider,
    principal: Principal,
    request: ChangePlanRequest,
    key: str | None,
    *,
    wait_seconds: float = IDEMPOTENCY_WAIT_SECONDS,
    now: datetime,
) -> IdempotentResult:
    """Runs :func:`change_plan` at most once per ``key``; typed errors are stored and replayed too."""
    if key is None:
        with session_scope(sessions) as session:
            view = change_plan(session, cache, billing, principal, request, now=now)
        return IdempotentResult(status=200, body=view.model_dump(mode="json"), replayed=False)
    if not 1 <= len(key) <= 128:
        raise ValidationError("Idempotency-Key must be 1 to 128 characters", code="invalid_idempotency_key")
    principal.require("owner")
    digest = request_hash(request.model_dump(mode="json"))
    tenant_id = principal.tenant_id
    with session_scope(sessions) as session:
        reserved = idempotency.reserve(session, tenant_id, SCOPE, key, digest)
    if not reserved:
        return _replay(sessions, tenant_id, key, digest, wait_seconds)
    try:
        with session_scope(sessions) as session:
            try:
                view = change_plan(session, cache, billing, principal, request, now=now)
                status, body = 200, view.model_dump(mode="json")
            except ReplyflowError as error:
                session.rollback()
                status, body = error.status, _error_body(error)
            idempotency.complete(session, tenant_id, SCOPE, key, status, body)
    except BaseException:
        with session_scope(sessions) as session:
            idempotency.release(session, tenant_id, SCOPE, key)
        raise
    return IdempotentResult(status=status, body=body, replayed=False)


def _error_body(error: ReplyflowError) -> dict[str, Any]:
    return {"error": {"code": error.code, "message": error.message, "details": error.details}}


def _replay(
    sessions: sessionmaker[Session], tenant_id: str, key: str, digest: str, wait_seconds: float
) -> IdempotentResult:
    deadline = time.monotonic() + wait_seconds
    while True:
        with session_scope(sessions) as session:
            row = idempotency.get(session, tenant_id, SCOPE, key)
            if row is None:
                raise ConflictError(
                    "the request with this Idempotency-Key failed; retry", code="idempotency_in_progress"
                )
            if row.request_hash != digest:
                raise ConflictError(
                    "this Idempotency-Key was used with a different request body",
                    code="idempotency_key_reused",
                )
            if row.status == "done" and row.response_status is not None:
                return IdempotentResult(status=row.response_status, body=row.response_body, replayed=True)
        if time.monotonic() >= deadline:
            raise ConflictError(
                "a request with this Idempotency-Key is still in progress; retry shortly",
                code="idempotency_in_progress",
            )
        time.sleep(0.05)
