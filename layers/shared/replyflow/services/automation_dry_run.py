"""Dry run of one automation: given a sample comment or DM, which actions would run, or why not.

The verdict comes from the processor's own decision functions (``domain.lifecycle``: the gate, the
winner among the matching automations, the plan of each action under its rules) on the same ``Rule``
the processor caches (``services.automation_config``), so it cannot drift from production: a property
test feeds both the same events and history and requires the same verdicts. The history a sample
lacks is that of a new contact: no earlier message (a DM to a commenter is outside the 24 h window),
no cooldown held; the tenant's DM quota is the real one. :func:`evaluate` takes any history.

An automation that starts a flow is shown starting it: the flow's active version is advanced from
its first step by the engine the pipeline runs (``domain.flow_engine.advance``, for a new contact,
nothing written), so the result names the flow, the version, the first step and what it would send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from replyflow.db.repositories import automations
from replyflow.db.repositories import flows as flows_repo
from replyflow.domain import matching
from replyflow.domain.flow_engine import AccountFacts, ContactFacts, Start, advance, new_run
from replyflow.domain.flows import FlowGraph
from replyflow.domain.lifecycle import (
    LIVE_PRIVATE_REPLY_WINDOW,
    DecisionReason,
    PlanFacts,
    PlannedSend,
    choose_winner,
    gate_event,
    once_per_post_applies,
    plan_actions,
    public_reply_variants,
)
from replyflow.domain.webhook_events import INBOUND_MESSAGE_KINDS, WebhookEvent
from replyflow.errors import NotFoundError
from replyflow.services.access import Principal
from replyflow.services.automation_config import AccountConfig, load_account_config, rules_for
from replyflow.services.automation_models import DryRunRequest, DryRunResult, FlowStartPreview, PlannedAction
from replyflow.services.flow_runs import draw
from replyflow.services.flow_simulator import decision_views, send_views
from replyflow.services.process_event import quota_left


def _not_run(reason: str, explanation: str, *, matched: bool = False) -> DryRunResult:
    return DryRunResult(matched=matched, would_run=False, reason=reason, explanation=explanation)


@dataclass(frozen=True)
class FlowTarget:
    """The flow a ``start_flow`` action names, as the processor would find it: ``graph`` None when
    the flow is missing, on another account or not active (the processor logs ``flow_inactive``)."""

    flow_id: str
    version: int | None = None
    graph: FlowGraph | None = None


@dataclass(frozen=True)
class History:
    """What the processor would know about the event's contact and tenant."""

    now: datetime
    occurred_at: datetime
    last_inbound_at: datetime | None = None  # the contact's last message before this one
    quota_left: int = 0
    cooling_down: frozenset[str] = frozenset()  # automations in cooldown for this contact
    new_contact: bool = True  # the person was not a contact of the account before this event
    once_claimed: frozenset[str] = frozenset()  # once-per-post automations that answered them here
    # The comment's creation time, where the processor would have read it (near the 7-day edge).
    comment_created_at: datetime | None = None
    live_window: timedelta = LIVE_PRIVATE_REPLY_WINDOW


def dry_run(
    session: Session,
    principal: Principal,
    automation_id: str,
    request: DryRunRequest,
    *,
    now: datetime,
) -> DryRunResult:
    row = automations.get(session, principal.tenant_id, automation_id)
    if row is None:
        raise NotFoundError("no such automation")
    config = load_account_config(session, principal.tenant_id, row.account_id)
    if config is None:
        raise NotFoundError("no such account")
    # The cached config holds active automations only; test this one whatever its flag.
    active_rules = {rule.id: rule for rule in config.rules}
    rule = active_rules.get(row.id) or rules_for(session, principal.tenant_id, [row])[0]
    event = WebhookEvent(
        kind=request.kind,
        ig_account_id=config.ig_user_id,
        event_key="sample",
        sender_id="sample-sender",
        sender_username=request.username,
        text=request.text,
        payload=request.payload,
        media_id=request.media_id,
        story_id=request.story_id,
        comment_id="sample-comment" if request.kind in ("comment", "live_comment") else None,
    )
    history = History(now=now, occurred_at=now, quota_left=quota_left(session, principal.tenant_id, now))
    target = flow_target(session, principal.tenant_id, row.account_id, rule)
    return evaluate(config, rule, event, history, active=row.active, flow=target)


def flow_target(session: Session, tenant_id: str, account_id: str, rule: matching.Rule) -> FlowTarget | None:
    """The flow ``rule`` starts, with its active graph (None: the rule starts no flow)."""
    action = rule.actions.get("start_flow")
    if not isinstance(action, dict) or not action.get("flow_id"):
        return None
    flow_id = str(action["flow_id"])
    flow = flows_repo.get_flow(session, tenant_id, flow_id)
    if flow is None or flow.account_id != account_id or flow.active_version is None:
        return FlowTarget(flow_id)
    row = flows_repo.get_version(session, tenant_id, flow_id, flow.active_version)
    graph = None if row is None else FlowGraph.model_validate(row.graph)
    return FlowTarget(flow_id, flow.active_version, graph)


def preview_start(
    target: FlowTarget, event: WebhookEvent, history: History, config: AccountConfig
) -> FlowStartPreview:
    """The run's first advance, by the pipeline's engine, for a new contact (nothing is written)."""
    if target.graph is None or target.version is None:
        return FlowStartPreview(flow_id=target.flow_id, would_start=False, reason="flow_inactive")
    if not event.sender_id:
        return FlowStartPreview(flow_id=target.flow_id, would_start=False, reason="no_recipient")
    start = Start(
        at=history.occurred_at,
        comment_id=event.comment_id if event.is_comment else None,
        inbound=event.kind in INBOUND_MESSAGE_KINDS,
    )
    result = advance(
        target.graph,
        new_run("dry-run", event.sender_id, target.graph),
        start,
        ContactFacts(draw=draw),
        AccountFacts(status=config.status, quota_left=history.quota_left),
        history.now,
    )
    return FlowStartPreview(
        flow_id=target.flow_id,
        version=target.version,
        would_start=True,
        first_step=target.graph.start,
        sends=send_views(result),
        decisions=decision_views(result),
        status=str(result.state.status),
        end_reason=str(result.end_reason) if result.end_reason else None,
    )


def _unmatched(
    config: AccountConfig, rule: matching.Rule, event: WebhookEvent, keyword: str | None
) -> DryRunResult | None:
    """Why the processor would not match ``rule`` on ``event`` at all, or None."""
    gate = gate_event(event, config.status, config.ig_user_id)
    if gate is not None:  # the processor stops here, before any matching
        return _not_run(gate, f"the event is skipped ({gate})", matched=keyword is not None)
    kinds = matching.TRIGGER_KINDS.get(rule.trigger, frozenset())
    if event.kind not in kinds:
        return _not_run(
            "trigger_mismatch",
            f"this automation fires on {rule.trigger} ({', '.join(sorted(kinds))} events), "
            f"not on {event.kind}",
        )
    if not matching.in_scope(rule, event):
        return _not_run(
            "media_not_in_scope", "the sample's post or story is not in this automation's media list"
        )
    excluded = matching.excluded_by(rule, event)
    if excluded is not None:
        return _not_run("excluded_keyword", f"the sample contains the excluded keyword {excluded!r}")
    if keyword is None:
        return _not_run(
            "no_keyword_match",
            f"no keyword of {list(rule.keywords)} matches the sample under match mode {rule.match_mode!r}",
        )
    return None


def evaluate(
    config: AccountConfig,
    rule: matching.Rule,
    event: WebhookEvent,
    history: History,
    *,
    active: bool = True,
    flow: FlowTarget | None = None,
) -> DryRunResult:
    """The processor's verdict on ``event`` for ``rule``, explained; ``flow``: the flow the rule
    starts (``flow_target``)."""
    keyword = matching.rule_matches(rule, event)
    unmatched = _unmatched(config, rule, event, keyword)
    if unmatched is not None:
        return unmatched
    if not active:
        return _not_run("inactive", "the sample matches, but the automation is disabled", matched=True)
    candidates = list(config.rules) if rule in config.rules else [*config.rules, rule]
    selection = choose_winner(
        matching.matching_rules(candidates, event),
        lambda r: r.id not in history.cooling_down,
        lambda r: not once_per_post_applies(r, event) or r.id not in history.once_claimed,
        new_contact=history.new_contact,
    )
    verdict = next(v for v in selection.verdicts if v.rule_id == rule.id)
    if verdict.reason == DecisionReason.SUPERSEDED and selection.winner is not None:
        result = _not_run(
            "superseded",
            f"the sample matches, but automation {selection.winner.rule.name!r} runs first",
            matched=True,
        )
        result.superseded_by = selection.winner.rule.id
        return result
    if verdict.reason is not None:
        return _not_run(verdict.reason, _CLOSED.get(verdict.reason, str(verdict.reason)), matched=True)
    match = next(m for m in matching.matching_rules([rule], event))
    facts = PlanFacts(
        account_username=config.username,
        occurred_at=history.occurred_at,
        now=history.now,
        last_inbound_at=history.last_inbound_at,
        quota_left=history.quota_left,
        comment_created_at=history.comment_created_at,
        live_window=history.live_window,
    )
    steps = plan_actions(event, match, facts, lambda _rule, _count: 0)
    started = preview_start(flow, event, history, config) if flow is not None else None
    if len(steps) == 1 and steps[0].action is None:
        if started is None:
            return _not_run(
                steps[0].reason, "the sample matches, but the automation has no actions", matched=True
            )
        steps = []  # the flow is the only action
    result = _matched([_planned(rule, step) for step in steps], started, keyword)
    result.notes = _notes(rule, event, config)
    return result


def _matched(
    actions: list[PlannedAction], started: FlowStartPreview | None, keyword: str | None
) -> DryRunResult:
    """The verdict of a sample that matches: it runs if an action would send or the flow would start."""
    sends = [a for a in actions if a.skipped is None]
    runs = bool(sends) or (started is not None and started.would_start)
    return DryRunResult(
        matched=True,
        would_run=runs,
        keyword=keyword,
        reason=None if runs else (started.reason if started else "no_action_would_send"),
        explanation=_explanation(runs, started),
        actions=actions,
        flow=started,
    )


def _explanation(runs: bool, started: FlowStartPreview | None) -> str:
    if started is not None and started.would_start:
        return (
            f"the sample matches: flow {started.flow_id} v{started.version} starts at {started.first_step!r}"
        )
    if started is not None:
        return f"the sample matches, but flow {started.flow_id} would not start ({started.reason})"
    return "the sample matches" if runs else "the sample matches, but every action would be skipped"


_CLOSED = {
    DecisionReason.COOLDOWN: "the contact is in this automation's cooldown",
    DecisionReason.NOT_NEW_CONTACT: "the automation answers new contacts only; this person is one already",
    DecisionReason.ONCE_PER_POST: "the automation already answered this person on this post",
}


def _planned(rule: matching.Rule, step: Any) -> PlannedAction:
    name = str(step.action)
    if not isinstance(step, PlannedSend):
        return PlannedAction(
            action=name, skipped=str(step.reason), note=f"{step.reason}: this action would be skipped"
        )
    if step.kind == "public_reply":
        variants = public_reply_variants(rule.actions.get(name) or {})
        return PlannedAction(action=name, public_reply_variants=variants)
    return PlannedAction(action=name, message=step.payload.get("message"))


def _notes(rule: matching.Rule, event: WebhookEvent, config: AccountConfig) -> list[str]:
    notes = []
    if rule.once_per_post:
        notes.append("a person is answered once per post: a second comment of theirs there is skipped")
    if rule.new_contacts_only:
        notes.append("only people who were not contacts before are answered (the sample is a new one)")
    if rule.cooldown_seconds:
        notes.append(
            f"a contact who triggered it in the last {rule.cooldown_seconds} s would be skipped (cooldown)"
        )
    if event.kind in ("comment", "live_comment"):
        notes.append("a private reply is possible within 7 days of the comment, once per comment")
    else:
        notes.append("a DM is possible within 24 h of the contact's last message")
    if config.status == "needs_reauth":
        notes.append("the account needs re-authorisation: the messages wait (parked) until it is reconnected")
    return notes
