"""Automations: CRUD, enable/disable, the plan's automation limit.

Invariants:
- an automation belongs to one of the tenant's accounts and its actions name the tenant's templates
  (a reference to anything else is a 404, as for any id of another tenant);
- actions fit the trigger: comment triggers send a private reply and/or a public reply; message,
  story and postback triggers send a DM; a flow started is one whose entry fits the trigger
  (``domain.flows.TRIGGER_ENTRY``: a comment flow from a comment trigger, a message flow otherwise);
- the plan's ``max_automations`` is checked under the tenant row lock, so concurrent creates cannot
  overshoot it;
- every write invalidates the tenant's list cache and the processor's cache of each affected account
  (old and new account on a move), so the pipeline sees the change at once.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from replyflow.db.models import Automation, Flow
from replyflow.db.repositories import accounts, automations, flows, plans, templates, tenants
from replyflow.domain.flows import TRIGGER_ENTRY, FlowGraph
from replyflow.errors import NotFoundError, PlanLimitError, ValidationError
from replyflow.ports import Cache
from replyflow.services import automation_models, cache_keys, write_through
from replyflow.services.access import Principal
from replyflow.services.automation_models import (
    Actions,
    AutomationCreate,
    AutomationFields,
    AutomationUpdate,
    AutomationView,
)
from replyflow.services.automation_models import StartFlowAction as StartFlowAction  # services.flows


def view(a: Automation) -> AutomationView:
    return AutomationView.model_validate(a, from_attributes=True)


def _invalidate(session: Session, cache: Cache, tenant_id: str, account_ids: set[str]) -> None:
    ids = sorted(account_ids)
    write_through.invalidate(session, lambda: cache_keys.invalidate_automations(cache, tenant_id, ids))


def _check_references(
    session: Session, tenant_id: str, account_id: str, actions: Actions, trigger: str
) -> None:
    account = accounts.get(session, tenant_id, account_id)
    if account is None:
        raise NotFoundError("no such account", details={"field": "account_id"})
    if account.status == "disabled":
        raise ValidationError("this account is disconnected; reconnect it first", code="account_disconnected")
    for name, action in (("private_reply", actions.private_reply), ("dm_reply", actions.dm_reply)):
        if action is not None and templates.get(session, tenant_id, action.template_id) is None:
            raise NotFoundError("no such template", details={"field": f"actions.{name}.template_id"})
    if actions.start_flow is not None:
        flow = flows.get_flow(session, tenant_id, actions.start_flow.flow_id)
        if flow is None or flow.account_id != account_id:
            raise NotFoundError(
                "no such flow on this account", details={"field": "actions.start_flow.flow_id"}
            )
        check_flow_entry(session, tenant_id, flow, trigger)


def flow_entry(session: Session, tenant_id: str, flow: Flow, version: int | None = None) -> str | None:
    """The entry of ``version`` of the flow (default: the active one, else the latest)."""
    number = version or flow.active_version or flow.latest_version
    row = flows.get_version(session, tenant_id, flow.id, number)
    return None if row is None else FlowGraph.model_validate(row.graph).entry


def check_flow_entry(
    session: Session,
    tenant_id: str,
    flow: Flow,
    trigger: str,
    *,
    version: int | None = None,
    loc: tuple[str, ...] = ("body", "actions", "start_flow", "flow_id"),
) -> None:
    """Refuse a trigger whose events cannot start the flow: a comment flow's first send is the one
    private reply (a message has no comment to answer), a message flow DMs in the window the
    person's message opened (a comment opens none)."""
    number = version or flow.active_version or flow.latest_version
    entry = flow_entry(session, tenant_id, flow, number)
    expected = TRIGGER_ENTRY.get(trigger)
    if entry is None or expected is None or entry == expected:
        return
    raise ValidationError(
        f"the {trigger} trigger starts flows whose entry is {expected!r}; "
        f"flow {flow.id} (version {number}) has entry {entry!r}",
        code="flow_entry_mismatch",
        details=[
            {
                "loc": list(loc),
                "type": "flow_entry_mismatch",
                "trigger": trigger,
                "entry": entry,
            }
        ],
    )


def load_views(session: Session, tenant_id: str) -> list[AutomationView]:
    """The tenant's automations from the database (what the cached list holds)."""
    return [view(a) for a in automations.list_for_tenant(session, tenant_id)]


def list_automations(
    session: Session, cache: Cache, principal: Principal, account_id: str | None = None
) -> list[AutomationView]:
    return automation_models.list_automations(
        cache, principal.tenant_id, account_id, lambda: load_views(session, principal.tenant_id)
    )


def _get(session: Session, principal: Principal, automation_id: str) -> Automation:
    found = automations.get(session, principal.tenant_id, automation_id)
    if found is None:
        raise NotFoundError("no such automation")
    return found


def get_automation(session: Session, principal: Principal, automation_id: str) -> AutomationView:
    return view(_get(session, principal, automation_id))


def create(session: Session, cache: Cache, principal: Principal, request: AutomationCreate) -> AutomationView:
    principal.require("admin")
    tenants.get(session, principal.tenant_id, for_update=True)
    _check_references(session, principal.tenant_id, request.account_id, request.actions, request.trigger)
    plan = plans.plan_for_tenant(session, principal.tenant_id)
    if automations.count_for_tenant(session, principal.tenant_id) >= plan.max_automations:
        raise PlanLimitError(
            f"the {plan.code} plan allows {plan.max_automations} automations; upgrade or delete one",
            details={"limit": "max_automations", "allowed": plan.max_automations},
        )
    data = request.model_dump(mode="json")
    data["actions"] = request.actions.model_dump(mode="json", exclude_none=True)
    row = Automation(tenant_id=principal.tenant_id, **data)
    session.add(row)
    session.flush()
    _invalidate(session, cache, principal.tenant_id, {row.account_id})
    return view(row)


def update(
    session: Session, cache: Cache, principal: Principal, automation_id: str, request: AutomationUpdate
) -> AutomationView:
    principal.require("admin")
    row = _get(session, principal, automation_id)
    changes = request.model_dump(mode="json", exclude_unset=True)
    if "actions" in changes:
        changes["actions"] = (
            request.actions.model_dump(mode="json", exclude_none=True) if request.actions else None
        )
    for field in (
        "name",
        "trigger",
        "match_mode",
        "actions",
        "account_id",
        "keywords",
        "cooldown_seconds",
        "priority",
        "active",
        "exclude_keywords",
        "entries",
        "once_per_post",
        "new_contacts_only",
    ):
        if field in changes and changes[field] is None:
            raise ValidationError(
                f"{field} cannot be null", details=[{"loc": ["body", field], "type": "not_null"}]
            )
    merged = {
        **view(row).model_dump(mode="json", include=set(AutomationFields.model_fields) | {"account_id"}),
        **changes,
    }
    checked = AutomationCreate.model_validate(merged)  # pydantic's error maps to 422 with field locations
    _check_references(session, principal.tenant_id, checked.account_id, checked.actions, checked.trigger)
    old_account = row.account_id
    for field, value in checked.model_dump(mode="json").items():
        setattr(row, field, value)
    row.actions = checked.actions.model_dump(mode="json", exclude_none=True)
    session.flush()
    _invalidate(session, cache, principal.tenant_id, {old_account, row.account_id})
    return view(row)


def _check_active_room(session: Session, tenant_id: str) -> None:
    """Automations paused by a downgrade stay paused while the plan's limit is used up."""
    tenants.get(session, tenant_id, for_update=True)
    plan = plans.plan_for_tenant(session, tenant_id)
    if automations.active_count(session, tenant_id) >= plan.max_automations:
        raise PlanLimitError(
            f"the {plan.code} plan runs {plan.max_automations} automations at once; pause one or upgrade",
            details={"limit": "max_automations", "allowed": plan.max_automations},
        )


def set_active(
    session: Session, cache: Cache, principal: Principal, automation_id: str, active: bool
) -> AutomationView:
    principal.require("admin")
    row = _get(session, principal, automation_id)
    if active and row.active is False:
        account = accounts.get(session, principal.tenant_id, row.account_id)
        if account is None or account.status == "disabled":
            raise ValidationError(
                "this automation's account is disconnected; reconnect it first", code="account_disconnected"
            )
        _check_active_room(session, principal.tenant_id)
    row.active = active
    row.paused_reason = None  # a person decided; billing's reason no longer applies
    session.flush()
    _invalidate(session, cache, principal.tenant_id, {row.account_id})
    return view(row)


def delete(session: Session, cache: Cache, principal: Principal, automation_id: str) -> None:
    principal.require("admin")
    row = _get(session, principal, automation_id)
    account_id = row.account_id
    session.delete(row)
    session.flush()
    _invalidate(session, cache, principal.tenant_id, {account_id})
