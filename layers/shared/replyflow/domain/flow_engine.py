"""The flow engine's core: run state + one stimulus + the contact's facts + now -> what happens next.

:func:`advance` is pure: the processor (``services.flow_runs``), the timer sweep and the simulator
call it with the same values, and it returns everything to apply as data (:class:`Advance`): the
sends (each with its ledger dedupe key, ``flow:{run}:{seq}``: the run's step counter makes a step's
send unique, so a redelivered event or a timer fired twice can never reserve it twice), the
contact's changes, the one timer to set, a decision per step with its reason, and why the run ended.

Stimuli: :class:`Start` (an automation's trigger), :class:`Inbound` (a tap, a quick reply or text
from the person; only a run ``waiting`` takes it, and only if the wait has a branch for it, else it
is ``handled=False`` and goes on to keyword automations) and :class:`TimerFired` (a delay or a wait
timeout, which names the step and the step counter it was set at, so a stale timer does nothing).

Rules at run time (the validator checks the graph; the engine still checks every send):
- before the person has answered, a comment-started run may send one private reply and nothing else;
  afterwards a DM only within 24 h of their last message (``window_closed`` otherwise);
- an account needing re-authorisation or disabled, or a plan quota used up, ends the run with that
  reason instead of sending (nothing is sent silently late, and nothing is dropped silently).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from replyflow.domain.contact_fields import ContactFieldError, parse_email, parse_phone
from replyflow.domain.flows import (
    MAX_STEPS_PER_ADVANCE,
    CaptureStep,
    ConditionStep,
    DelayStep,
    FlowGraph,
    MessageStep,
    PublicReplyStep,
    SetFieldStep,
    Step,
    TagStep,
    WaitStep,
)
from replyflow.domain.lifecycle import DM_WINDOW, PRIVATE_REPLY_WINDOW, SendKind


class RunStatus(StrEnum):
    RUNNING = "running"  # between steps (only inside advance)
    WAITING = "waiting"  # for the person (a wait step)
    DELAYED = "delayed"  # for a delay's timer
    COMPLETED = "completed"
    ENDED = "ended"  # could not proceed: see end_reason


ACTIVE_STATUSES = frozenset({RunStatus.WAITING, RunStatus.DELAYED})


class EndReason(StrEnum):
    COMPLETED = "completed"
    WAIT_TIMEOUT = "wait_timeout"
    WINDOW_CLOSED = "window_closed"
    NEEDS_REAUTH = "needs_reauth"
    ACCOUNT_DISABLED = "account_disabled"
    QUOTA_EXCEEDED = "quota_exceeded"
    STEP_LIMIT = "step_limit"
    NO_RECIPIENT = "no_recipient"


class StepOutcome(StrEnum):
    """A step decision; the analytics counters are these per step."""

    ENTERED = "entered"
    SENT = "sent"
    TAPPED = "tapped"  # a wait took a button tap or quick reply
    REPLIED = "replied"  # a wait took text
    TIMED_OUT = "timed_out"
    CAPTURED = "captured"
    INVALID = "invalid"
    BRANCHED = "branched"
    CHANGED = "changed"  # tag, untag, set field
    DELAYED = "delayed"
    COMPLETED = "completed"
    DROPPED = "dropped"


@dataclass(frozen=True)
class RunState:
    run_id: str
    contact_igsid: str
    status: RunStatus
    step_id: str | None
    seq: int = 0
    last_inbound_at: datetime | None = None
    comment_id: str | None = None
    # When the comment's one private reply must go out by, and whether it has.
    private_reply_not_after: datetime | None = None
    private_reply_used: bool = False

    @property
    def window_expires_at(self) -> datetime | None:
        return self.last_inbound_at + DM_WINDOW if self.last_inbound_at else None


@dataclass(frozen=True)
class Start:
    at: datetime
    comment_id: str | None = None
    inbound: bool = False  # a DM-family trigger opens the window itself


@dataclass(frozen=True)
class Inbound:
    kind: str  # postback / quick_reply / message
    at: datetime
    payload: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class TimerFired:
    step_id: str
    seq: int


Stimulus = Start | Inbound | TimerFired


@dataclass(frozen=True)
class ContactFacts:
    tags: frozenset[str] = frozenset()
    fields: dict[str, str] = field(default_factory=dict)
    # Asked only when a ``follows`` condition runs (a Graph call); None: unknown.
    follows: Callable[[], bool | None] = lambda: None
    # A number in [0, 1) for a random split, from a key (deterministic per run and step).
    draw: Callable[[str], float] = lambda key: 0.0


@dataclass(frozen=True)
class AccountFacts:
    status: str = "active"  # active / needs_reauth / disabled
    quota_left: int = 1_000_000


@dataclass(frozen=True)
class FlowSend:
    step_id: str
    kind: SendKind
    dedupe_key: str
    payload: dict[str, Any]
    recipient_id: str | None


@dataclass(frozen=True)
class ContactChange:
    op: str  # add_tag / remove_tag / set_field
    name: str
    value: str | None = None


@dataclass(frozen=True)
class TimerRequest:
    step_id: str
    seq: int
    due_at: datetime
    purpose: str  # delay / wait_timeout


@dataclass(frozen=True)
class StepDecision:
    step_id: str
    outcome: StepOutcome
    reason: str | None = None


@dataclass
class Advance:
    state: RunState
    handled: bool = True
    sends: list[FlowSend] = field(default_factory=list)
    changes: list[ContactChange] = field(default_factory=list)
    timer: TimerRequest | None = None
    decisions: list[StepDecision] = field(default_factory=list)
    end_reason: EndReason | None = None


def new_run(run_id: str, contact_igsid: str, graph: FlowGraph) -> RunState:
    return RunState(run_id, contact_igsid, RunStatus.RUNNING, graph.start)


def advance(
    graph: FlowGraph,
    state: RunState,
    stimulus: Stimulus,
    contact: ContactFacts,
    account: AccountFacts,
    now: datetime,
) -> Advance:
    """Apply one stimulus to a run; see the module docstring."""
    steps = graph.by_id()
    result = Advance(state)
    _Walk(graph, steps, contact, account, now, result).run(stimulus)
    return result


class _Walk:
    def __init__(
        self,
        graph: FlowGraph,
        steps: dict[str, Step],
        contact: ContactFacts,
        account: AccountFacts,
        now: datetime,
        result: Advance,
    ) -> None:
        self.graph, self.steps, self.contact, self.account = graph, steps, contact, account
        self.now, self.result = now, result
        self.quota = account.quota_left
        self.tags = set(contact.tags)
        self.fields = dict(contact.fields)
        self.input: str | None = None  # what the person sent, for a capture

    @property
    def state(self) -> RunState:
        return self.result.state

    def set(self, **changes: Any) -> None:
        self.result.state = replace(self.result.state, **changes)

    def decide(self, step_id: str, outcome: StepOutcome, reason: str | None = None) -> None:
        self.result.decisions.append(StepDecision(step_id, outcome, reason))

    # -- stimuli -----------------------------------------------------------------------------------

    def run(self, stimulus: Stimulus) -> None:
        if isinstance(stimulus, Start):
            self._start(stimulus)
        elif isinstance(stimulus, Inbound):
            self._inbound(stimulus)
        else:
            self._timer(stimulus)

    def _start(self, start: Start) -> None:
        self.set(
            status=RunStatus.RUNNING,
            step_id=self.graph.start,
            comment_id=start.comment_id,
            last_inbound_at=start.at if start.inbound else None,
            private_reply_not_after=start.at + PRIVATE_REPLY_WINDOW if start.comment_id else None,
        )
        self._walk(self.graph.start)

    def _inbound(self, inbound: Inbound) -> None:
        state = self.state
        step = self.steps.get(state.step_id or "")
        if state.status != RunStatus.WAITING or not isinstance(step, WaitStep):
            self.result.handled = False
            return
        target, outcome, value = _route(step, inbound)
        if target is None:
            self.result.handled = False
            return
        last = state.last_inbound_at
        self.set(last_inbound_at=max(last, inbound.at) if last else inbound.at)
        self.input = value
        self.decide(step.id, outcome, f"payload {inbound.payload!r}" if inbound.payload else None)
        self._walk(target)

    def _timer(self, fired: TimerFired) -> None:
        state = self.state
        if state.status not in ACTIVE_STATUSES or (state.step_id, state.seq) != (fired.step_id, fired.seq):
            self.result.handled = False  # stale: the run moved on since the timer was set
            return
        step = self.steps.get(fired.step_id)
        if isinstance(step, DelayStep):
            self._walk(step.next)
        elif isinstance(step, WaitStep):
            self.decide(step.id, StepOutcome.TIMED_OUT)
            if step.on_timeout is None:
                self._end(EndReason.WAIT_TIMEOUT, step.id)
            else:
                self._walk(step.on_timeout)
        else:
            self.result.handled = False

    # -- steps -------------------------------------------------------------------------------------

    def _walk(self, step_id: str | None) -> None:
        for _ in range(MAX_STEPS_PER_ADVANCE):
            if step_id is None:
                self._end(EndReason.COMPLETED, self.state.step_id)
                return
            step = self.steps[step_id]
            self.set(status=RunStatus.RUNNING, step_id=step.id, seq=self.state.seq + 1)
            self.decide(step.id, StepOutcome.ENTERED)
            step_id = self._execute(step)
            if self.state.status != RunStatus.RUNNING:
                return
        self._end(EndReason.STEP_LIMIT, step_id)

    def _execute(self, step: Step) -> str | None:
        if isinstance(step, MessageStep):
            return step.next if self._send(step) else None
        if isinstance(step, WaitStep):
            self.set(status=RunStatus.WAITING)
            self._set_timer(step.id, step.timeout_minutes, "wait_timeout")
            return None
        if isinstance(step, DelayStep):
            self.set(status=RunStatus.DELAYED)
            self.decide(step.id, StepOutcome.DELAYED, f"{step.minutes} min")
            self._set_timer(step.id, step.minutes, "delay")
            return None
        if isinstance(step, ConditionStep):
            verdict, reason = self._condition(step)
            self.decide(step.id, StepOutcome.BRANCHED, f"{'then' if verdict else 'else'}: {reason}")
            return step.then if verdict else step.otherwise
        if isinstance(step, CaptureStep):
            return self._capture(step)
        if isinstance(step, TagStep):
            op = "add_tag" if step.kind == "tag" else "remove_tag"
            (self.tags.add if op == "add_tag" else self.tags.discard)(step.tag.lower())
            self.result.changes.append(ContactChange(op, step.tag))
            self.decide(step.id, StepOutcome.CHANGED, f"{op} {step.tag}")
            return step.next
        if isinstance(step, SetFieldStep):
            self.fields[step.field] = step.value
            self.result.changes.append(ContactChange("set_field", step.field, step.value))
            self.decide(step.id, StepOutcome.CHANGED, f"set {step.field}")
            return step.next
        return step.next if self._public_reply(step) else None

    def _set_timer(self, step_id: str, minutes: int, purpose: str) -> None:
        due = self.now + timedelta(minutes=minutes)
        self.result.timer = TimerRequest(step_id, self.state.seq, due, purpose)

    def _end(self, reason: EndReason, step_id: str | None) -> None:
        completed = reason in (EndReason.COMPLETED, EndReason.WAIT_TIMEOUT)
        self.set(status=RunStatus.COMPLETED if completed else RunStatus.ENDED)
        self.result.end_reason = reason
        self.result.timer = None
        if step_id is not None:
            outcome = StepOutcome.COMPLETED if completed else StepOutcome.DROPPED
            self.decide(step_id, outcome, str(reason))

    def _account_blocks(self, step_id: str) -> bool:
        if self.account.status == "disabled":
            self._end(EndReason.ACCOUNT_DISABLED, step_id)
        elif self.account.status == "needs_reauth":
            self._end(EndReason.NEEDS_REAUTH, step_id)
        else:
            return False
        return True

    def _send(self, step: MessageStep) -> bool:
        if self._account_blocks(step.id):
            return False
        state, message = self.state, step.message.to_message()
        payload: dict[str, Any]
        if state.last_inbound_at is None:
            not_after = state.private_reply_not_after
            if state.private_reply_used or not state.comment_id or not_after is None or self.now > not_after:
                self._end(EndReason.WINDOW_CLOSED, step.id)
                return False
            kind = SendKind.PRIVATE_REPLY
            payload = {"recipient": {"comment_id": state.comment_id}, "message": message}
        else:
            not_after = state.last_inbound_at + DM_WINDOW
            if self.now >= not_after:
                self._end(EndReason.WINDOW_CLOSED, step.id)
                return False
            kind = SendKind.DM
            payload = {"recipient": {"id": state.contact_igsid}, "message": message}
        if self.quota <= 0:
            self._end(EndReason.QUOTA_EXCEEDED, step.id)
            return False
        self.quota -= 1
        payload["not_after"] = not_after.isoformat()
        payload["flow_step"] = step.id
        self.result.sends.append(FlowSend(step.id, kind, self._dedupe_key(), payload, state.contact_igsid))
        if kind == SendKind.PRIVATE_REPLY:
            self.set(private_reply_used=True)
        self.decide(step.id, StepOutcome.SENT, str(kind))
        return True

    def _public_reply(self, step: PublicReplyStep) -> bool:
        if self._account_blocks(step.id):
            return False
        if not self.state.comment_id:
            self.decide(step.id, StepOutcome.DROPPED, "no comment to reply to")
            return True
        payload = {"comment_id": self.state.comment_id, "message": step.text, "flow_step": step.id}
        self.result.sends.append(
            FlowSend(step.id, SendKind.PUBLIC_REPLY, self._dedupe_key(), payload, self.state.contact_igsid)
        )
        self.decide(step.id, StepOutcome.SENT, str(SendKind.PUBLIC_REPLY))
        return True

    def _dedupe_key(self) -> str:
        return f"flow:{self.state.run_id}:{self.state.seq}"

    def _condition(self, step: ConditionStep) -> tuple[bool, str]:
        if step.test == "follows":
            follows = self.contact.follows()
            if follows is None:
                return False, "follow status unknown"
            return follows, "follows" if follows else "does not follow"
        if step.test == "has_tag":
            present = (step.tag or "").lower() in self.tags
            return present, f"tag {step.tag} {'present' if present else 'absent'}"
        value = self.fields.get(step.field or "")
        if step.test == "field_present":
            return bool(value), f"field {step.field} {'present' if value else 'absent'}"
        if step.test == "field_matches":
            matched = value is not None and re.search(step.pattern or "", value) is not None
            return matched, f"field {step.field} {'matches' if matched else 'does not match'}"
        draw = self.contact.draw(f"{self.state.run_id}:{step.id}")
        return draw * 100 < step.percent, f"random {draw:.2f} vs {step.percent}%"

    def _capture(self, step: CaptureStep) -> str | None:
        value = (self.input or "").strip()
        valid = _captured(step.field, value)
        if valid is None:
            self.decide(step.id, StepOutcome.INVALID, f"not a valid {step.field}")
            if step.on_invalid is None:
                self._end(EndReason.COMPLETED, step.id)
            return step.on_invalid
        self.fields[step.field] = valid
        self.result.changes.append(ContactChange("set_field", step.field, valid))
        self.decide(step.id, StepOutcome.CAPTURED, step.field)
        return step.next


def _route(step: WaitStep, inbound: Inbound) -> tuple[str | None, StepOutcome, str | None]:
    """Which branch of a wait an inbound message takes: a payload route (tap or quick reply), else
    any text (a quick reply's payload counts as its text: ``user_email`` replies carry the address)."""
    if inbound.kind in ("postback", "quick_reply") and inbound.payload in step.routes:
        return step.routes[inbound.payload], StepOutcome.TAPPED, inbound.payload
    if step.on_text is not None and inbound.kind in ("message", "quick_reply"):
        value = inbound.payload if inbound.kind == "quick_reply" else inbound.text
        return step.on_text, StepOutcome.REPLIED, value or inbound.text
    return None, StepOutcome.DROPPED, None


def _captured(field_name: str, value: str) -> str | None:
    """The canonical email or phone (the contacts' own rule, ``domain.contact_fields``), or None."""
    try:
        return parse_email(value) if field_name == "email" else parse_phone(value)
    except ContactFieldError:
        return None
