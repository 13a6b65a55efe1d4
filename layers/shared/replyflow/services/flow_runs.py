"""Flow runs on the pipeline: the engine's decisions (``domain.flow_engine.advance``) applied in the
caller's transaction (docs/architecture.md, "Flows").

Three entry points, each inside the unit of work of its caller:
- :meth:`FlowRunner.start`: an automation whose actions name ``start_flow`` starts a run for the
  contact on the flow's active version (pinned: editing the flow later does not move it). One active
  run per contact per flow (the unique key); a second start while one runs is logged and skipped;
- :meth:`FlowRunner.route_inbound`: a postback, quick reply or message from a contact with a run
  waiting for them goes to that run *before* keyword automations; when the wait has no branch for it
  the run is left alone and the event goes on to the automations;
- :meth:`FlowRunner.fire_timer`: a due delay or wait timeout, claimed by one conditional UPDATE in
  the same transaction (exactly once, whoever fires it).

Applying an advance writes, in that one transaction: the run's new state; one ``outbound_messages``
row per send with the engine's dedupe key ``flow:{run}:{seq}`` (a replayed event stops at
``inbound_events``, and a replay that got past it would still find the key taken); the contact's tag
and field changes; the run's one pending timer; an ``automation_logs`` row (action ``flow_step``) and a
``flow_step_stats`` count per step decision. Queued rows are published by the caller after the commit,
as the processor publishes its own. A run that cannot go on ends with its reason logged
(``window_closed``, ``needs_reauth``, ``account_disabled``, ``quota_exceeded``).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from replyflow.db.models import FlowRun, FlowTimer
from replyflow.db.repositories import accounts as accounts_repo
from replyflow.db.repositories import contacts as contacts_repo
from replyflow.db.repositories import flows as flows_repo
from replyflow.db.repositories import ledger
from replyflow.db.repositories import logs as logs_repo
from replyflow.domain.contact_fields import ContactFieldError, parse_field, validate_tag
from replyflow.domain.flow_engine import (
    ACTIVE_STATUSES,
    AccountFacts,
    Advance,
    ContactFacts,
    EndReason,
    Inbound,
    RunState,
    RunStatus,
    Start,
    StepDecision,
    StepOutcome,
    Stimulus,
    TimerFired,
    advance,
)
from replyflow.domain.flows import FlowGraph
from replyflow.domain.lifecycle import DecisionReason, LogAction, OutboundStatus
from replyflow.domain.messages import FlowTimerJob
from replyflow.domain.webhook_events import INBOUND_MESSAGE_KINDS, WebhookEvent
from replyflow.ids import new_id
from replyflow.observability import logger
from replyflow.ports import ContactFields, ContactStore, FollowStatus, TokenDecrypter

# SQS caps a message delay at 15 minutes (the sender's MAX_SQS_DELAY_SECONDS, the same limit).
MAX_SQS_DELAY_SECONDS = 900
# Event kinds a waiting run may take.
ROUTABLE_KINDS = frozenset({"postback", "quick_reply", "message"})
# Outcomes counted with their reason in the step analytics; the others are counted per outcome only.
_COUNTED_WITH_REASON = frozenset({StepOutcome.DROPPED, StepOutcome.INVALID, StepOutcome.COMPLETED})


@dataclass
class FlowScope:
    """Who a run belongs to and what the account allows right now (``account_facts`` is read at the
    first step that needs it: most inbound messages find no waiting run and cost no quota query)."""

    tenant_id: str
    account_id: str
    priority: str
    account_facts: Callable[[], AccountFacts]
    event_key: str | None = None
    _account: AccountFacts | None = field(default=None, repr=False)

    @property
    def account(self) -> AccountFacts:
        if self._account is None:
            self._account = self.account_facts()
        return self._account


@dataclass
class FlowApplied:
    run_id: str
    queued: list[int] = field(default_factory=list)
    decisions: list[StepDecision] = field(default_factory=list)
    end_reason: EndReason | None = None
    timer: tuple[int, datetime] | None = None  # the run's new timer: id and due time


def timer_jobs(
    tenant_id: str, account_id: str, timers: list[tuple[int, datetime]], *, now: datetime
) -> list[tuple[str, int]]:
    """(body, delay seconds) of the timers due within SQS's longest delay: published on the events
    queue after the commit, they fire on time; later ones (and any lost publish) are the sweep's."""
    jobs = []
    for timer_id, due_at in timers:
        delay = math.ceil((due_at - now).total_seconds())
        if delay <= MAX_SQS_DELAY_SECONDS:
            jobs.append((FlowTimerJob(tenant_id, account_id, timer_id).to_json(), max(0, delay)))
    return jobs


class ContactsTable:
    """The ContactStore port on the contacts' own tables (``db.repositories.contacts``): names and
    values pass the contacts' rules (``domain.contact_fields``); one that does not is logged, not
    stored (the validator refuses such names in a graph, so only a capture's odd value gets here)."""

    def read(self, session: Session, tenant_id: str, account_id: str, igsid: str) -> ContactFields:
        contact = contacts_repo.find(session, tenant_id, account_id, igsid)
        if contact is None:
            return ContactFields(frozenset(), {})
        fields = contacts_repo.fields_of(session, tenant_id, [contact.id]).get(contact.id, {})
        tags = contacts_repo.tags_of(session, tenant_id, [contact.id]).get(contact.id, [])
        return ContactFields(frozenset(tags), {key: value.text for key, value in fields.items()})

    def add_tag(
        self, session: Session, tenant_id: str, account_id: str, igsid: str, tag: str, *, now: datetime
    ) -> None:
        contact = contacts_repo.find(session, tenant_id, account_id, igsid)
        if contact is not None and (name := _valid(validate_tag, tag)) is not None:
            contacts_repo.add_tag(session, tenant_id, contact.id, name, now=now)

    def remove_tag(self, session: Session, tenant_id: str, account_id: str, igsid: str, tag: str) -> None:
        contact = contacts_repo.find(session, tenant_id, account_id, igsid)
        if contact is not None and (name := _valid(validate_tag, tag)) is not None:
            contacts_repo.remove_tag(session, tenant_id, contact.id, name)

    def set_field(
        self,
        session: Session,
        tenant_id: str,
        account_id: str,
        igsid: str,
        name: str,
        value: str,
        *,
        now: datetime,
    ) -> None:
        contact = contacts_repo.find(session, tenant_id, account_id, igsid)
        if contact is None:
            return
        try:
            parsed = parse_field(name, value)
        except ContactFieldError as error:
            logger.warning("flow field not stored", extra={"field": name, "error": error.message})
            return
        contacts_repo.set_field(session, tenant_id, contact.id, name, parsed, now=now)


def _valid(check: Callable[[str], str], value: str) -> str | None:
    try:
        return check(value)
    except ContactFieldError as error:
        logger.warning("flow tag not applied", extra={"error": error.message})
        return None


def draw(key: str) -> float:
    """A number in [0, 1) from a key: a redelivery or the simulator draws the same split."""
    return zlib.crc32(key.encode()) / 2**32


class FlowRunner:
    """Stateless apart from its collaborators; thread-safe."""

    def __init__(
        self,
        *,
        contacts: ContactStore | None = None,
        follow_status: FollowStatus | None = None,
        cipher: TokenDecrypter | None = None,
    ) -> None:
        self._contacts = contacts or ContactsTable()
        self._follow_status = follow_status
        self._cipher = cipher

    # -- entry points ------------------------------------------------------------------------------

    def start(
        self,
        session: Session,
        scope: FlowScope,
        *,
        flow_id: str,
        automation_id: str | None,
        event: WebhookEvent,
        occurred_at: datetime,
        now: datetime,
    ) -> FlowApplied | None:
        """Start ``flow_id`` for the event's sender; None (and a logged reason) when it cannot."""
        igsid = event.sender_id
        flow = flows_repo.get_flow(session, scope.tenant_id, flow_id)
        if flow is None or flow.account_id != scope.account_id or flow.active_version is None or not igsid:
            reason = "no_recipient" if not igsid and flow is not None else "flow_inactive"
            self._log_skip(session, scope, automation_id, reason, f"flow {flow_id}")
            return None
        graph = self._load_graph(session, scope.tenant_id, flow.id, flow.active_version)
        run = flows_repo.start_run(
            session,
            scope.tenant_id,
            scope.account_id,
            id=new_id(),
            flow_id=flow.id,
            version=flow.active_version,
            automation_id=automation_id,
            contact_igsid=igsid,
            status=RunStatus.RUNNING,
            seq=0,
            private_reply_used=False,
        )
        if run is None:
            self._log_skip(session, scope, automation_id, "flow_already_running", f"flow {flow_id}")
            return None
        start = Start(
            at=occurred_at,
            comment_id=event.comment_id if event.is_comment else None,
            inbound=event.kind in INBOUND_MESSAGE_KINDS,
        )
        return self._advance(session, scope, run, graph, start, now)

    def route_inbound(
        self, session: Session, scope: FlowScope, event: WebhookEvent, *, occurred_at: datetime, now: datetime
    ) -> FlowApplied | None:
        """Give the event to the contact's waiting run; None when no run takes it."""
        if event.kind not in ROUTABLE_KINDS or not event.sender_id:
            return None
        # A plain read finds the run, then its row is locked by primary key and checked again: a
        # locking read on the index would take gap locks when no run waits (most messages), and two
        # such events starting runs of new contacts could then deadlock on their inserts.
        found = flows_repo.waiting_run(
            session, scope.tenant_id, scope.account_id, event.sender_id, for_update=False
        )
        if found is None:
            return None
        run = flows_repo.lock_run(session, scope.tenant_id, found.id)
        if run is None or run.status != RunStatus.WAITING:
            return None
        graph = self._load_graph(session, scope.tenant_id, run.flow_id, run.version)
        inbound = Inbound(event.kind, occurred_at, payload=event.payload, text=event.text)
        return self._advance(session, scope, run, graph, inbound, now)

    def fire_timer(
        self, session: Session, scope: FlowScope, timer: FlowTimer, *, now: datetime
    ) -> FlowApplied | None:
        """Fire a due timer once; None when another worker fired it or the run moved on."""
        if not flows_repo.claim_timer(session, scope.tenant_id, timer.id, now=now):
            return None
        run = flows_repo.lock_run(session, scope.tenant_id, timer.run_id)
        if run is None or run.status not in ACTIVE_STATUSES:
            return None
        graph = self._load_graph(session, scope.tenant_id, run.flow_id, run.version)
        return self._advance(session, scope, run, graph, TimerFired(timer.step_id, timer.seq), now)

    # -- applying an advance -----------------------------------------------------------------------

    def _advance(
        self,
        session: Session,
        scope: FlowScope,
        run: FlowRun,
        graph: FlowGraph,
        stimulus: Stimulus,
        now: datetime,
    ) -> FlowApplied | None:
        stored = self._contacts.read(session, scope.tenant_id, scope.account_id, run.contact_igsid)
        facts = ContactFacts(
            tags=stored.tags,
            fields=dict(stored.fields),
            follows=self._follows(session, scope, run.contact_igsid),
            draw=draw,
        )
        result = advance(graph, state_of(run), stimulus, facts, scope.account, now)
        if not result.handled:
            return None
        return self._apply(session, scope, run, result, now)

    def _apply(
        self, session: Session, scope: FlowScope, run: FlowRun, result: Advance, now: datetime
    ) -> FlowApplied:
        applied = FlowApplied(run.id, decisions=list(result.decisions), end_reason=result.end_reason)
        _store_state(run, result.state, result.end_reason, now)
        for send in result.sends:
            row = ledger.add_outbound(
                session,
                scope.tenant_id,
                scope.account_id,
                automation_id=run.automation_id,
                kind=send.kind,
                dedupe_key=send.dedupe_key,
                comment_id=run.comment_id,
                recipient_id=send.recipient_id,
                event_key=scope.event_key,
                payload=send.payload,
                priority=scope.priority,
                status=OutboundStatus.QUEUED,
            )
            if row is None:
                self._log_skip(session, scope, run.automation_id, DecisionReason.DUPLICATE, send.dedupe_key)
            else:
                applied.queued.append(row.id)
        for change in result.changes:
            self._change_contact(session, scope, run.contact_igsid, change.op, change.name, change.value, now)
        flows_repo.cancel_timers(session, scope.tenant_id, run.id)
        if result.timer is not None:
            timer = flows_repo.add_timer(
                session,
                scope.tenant_id,
                scope.account_id,
                run_id=run.id,
                step_id=result.timer.step_id,
                seq=result.timer.seq,
                purpose=result.timer.purpose,
                due_at=result.timer.due_at,
            )
            session.flush()
            applied.timer = (timer.id, timer.due_at)
        for decision in result.decisions:
            self._log_decision(session, scope, run, decision, now)
        if result.end_reason is not None and result.end_reason not in (
            EndReason.COMPLETED,
            EndReason.WAIT_TIMEOUT,
        ):
            logger.info(
                "flow run ended",
                extra={"run_id": run.id, "flow_id": run.flow_id, "reason": str(result.end_reason)},
            )
        return applied

    def _change_contact(
        self,
        session: Session,
        scope: FlowScope,
        igsid: str,
        op: str,
        name: str,
        value: str | None,
        now: datetime,
    ) -> None:
        tenant_id, account_id = scope.tenant_id, scope.account_id
        if op == "add_tag":
            self._contacts.add_tag(session, tenant_id, account_id, igsid, name, now=now)
        elif op == "remove_tag":
            self._contacts.remove_tag(session, tenant_id, account_id, igsid, name)
        else:
            self._contacts.set_field(session, tenant_id, account_id, igsid, name, value or "", now=now)

    def _log_decision(
        self, session: Session, scope: FlowScope, run: FlowRun, decision: StepDecision, now: datetime
    ) -> None:
        detail = f"flow {run.flow_id} v{run.version} run {run.id} step {decision.step_id}"
        if decision.reason:
            detail += f": {decision.reason}"
        logs_repo.automation(
            session,
            scope.tenant_id,
            scope.account_id,
            automation_id=run.automation_id,
            event_key=scope.event_key,
            action=LogAction.FLOW_STEP,
            reason=str(decision.outcome),
            detail=detail,
        )
        flows_repo.count_step(
            session,
            scope.tenant_id,
            flow_id=run.flow_id,
            version=run.version,
            step_id=decision.step_id,
            outcome=str(decision.outcome),
            reason=decision.reason if decision.outcome in _COUNTED_WITH_REASON else None,
            day=now.date(),
        )

    def _log_skip(
        self, session: Session, scope: FlowScope, automation_id: str | None, reason: str, detail: str
    ) -> None:
        logs_repo.automation(
            session,
            scope.tenant_id,
            scope.account_id,
            automation_id=automation_id,
            event_key=scope.event_key,
            action=LogAction.SKIPPED,
            reason=reason,
            detail=detail,
        )

    # -- collaborators -----------------------------------------------------------------------------

    def _load_graph(self, session: Session, tenant_id: str, flow_id: str, version: int) -> FlowGraph:
        row = flows_repo.get_version(session, tenant_id, flow_id, version)
        if row is None:
            raise LookupError(f"flow {flow_id} has no version {version}")
        return FlowGraph.model_validate(row.graph)  # validated when written; ~0.1 ms to read

    def _follows(self, session: Session, scope: FlowScope, igsid: str) -> Callable[[], bool | None]:
        asked: list[bool | None] = []

        def follows() -> bool | None:
            if asked:
                return asked[0]
            asked.append(self._ask_follows(session, scope, igsid))
            return asked[0]

        return follows

    def _ask_follows(self, session: Session, scope: FlowScope, igsid: str) -> bool | None:
        if self._follow_status is None or self._cipher is None:
            return None
        account = accounts_repo.get(session, scope.tenant_id, scope.account_id)
        if account is None or not account.access_token_encrypted:
            return None
        try:
            token = self._cipher.decrypt(account.access_token_encrypted, context=account.id)
            return self._follow_status.user_follows(igsid, token)
        except Exception as error:  # unknown: the condition takes its else branch, with the reason
            logger.warning("follow status not read", extra={"error": type(error).__name__})
            return None


def state_of(run: FlowRun) -> RunState:
    return RunState(
        run_id=run.id,
        contact_igsid=run.contact_igsid,
        status=RunStatus(run.status),
        step_id=run.step_id,
        seq=run.seq,
        last_inbound_at=run.last_inbound_at,
        comment_id=run.comment_id,
        private_reply_not_after=run.private_reply_not_after,
        private_reply_used=run.private_reply_used,
    )


def _store_state(run: FlowRun, state: RunState, end_reason: EndReason | None, now: datetime) -> None:
    run.status = str(state.status)
    run.step_id = state.step_id
    run.seq = state.seq
    run.last_inbound_at = state.last_inbound_at
    run.comment_id = state.comment_id
    run.private_reply_not_after = state.private_reply_not_after
    run.private_reply_used = state.private_reply_used
    run.updated_at = now
    if state.status not in ACTIVE_STATUSES:
        run.active_key = None
        run.end_reason = str(end_reason) if end_reason else None
        run.ended_at = now
