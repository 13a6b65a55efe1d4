"""The flow simulator: a conversation played against a flow for a fake contact, with the engine the
pipeline runs (``domain.flow_engine.advance``), not a restatement of it.

The conversation is a list of steps: the person's ``comment``, ``postback``, ``quick_reply`` or
``message``; ``wait`` (minutes pass on the simulated clock, and every timer that falls due fires, in
order, as the timer sweep would fire it); ``follows`` (the User Profile API's answer changes). The
transcript has, per step, whether the run took it, every send with its ledger kind and message,
every step decision with its reason, the contact's changes, the timer set and why the run ended.
Nothing is written and nothing is sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from replyflow.domain.flow_engine import (
    AccountFacts,
    Advance,
    ContactFacts,
    Inbound,
    RunState,
    RunStatus,
    Start,
    Stimulus,
    TimerFired,
    TimerRequest,
    advance,
    new_run,
)
from replyflow.domain.flows import FlowGraph
from replyflow.services.flow_runs import draw

MAX_EVENTS = 100
SIMULATED_IGSID = "1000000000000001"


class SimulatedEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["comment", "postback", "quick_reply", "message", "wait", "follows"]
    text: str | None = Field(default=None, max_length=1000)
    payload: str | None = Field(default=None, max_length=1000)
    minutes: int = Field(default=0, ge=0, le=7 * 24 * 60)
    follows: bool | None = None


class SimulateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[SimulatedEvent] = Field(min_length=1, max_length=MAX_EVENTS)
    follows: bool | None = Field(default=None, description="the User Profile API's answer at the start")
    tags: list[str] = Field(default_factory=list, max_length=50)
    fields: dict[str, str] = Field(default_factory=dict, max_length=50)
    quota_left: int = Field(default=1000, ge=0)
    account_status: Literal["active", "needs_reauth", "disabled"] = "active"


class SimulatedStep(BaseModel):
    at: str
    event: dict[str, Any]
    handled: bool
    sends: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    changes: list[dict[str, Any]]
    timer: dict[str, Any] | None
    end_reason: str | None
    status: str
    step_id: str | None


class SimulateView(BaseModel):
    transcript: list[SimulatedStep]
    status: str
    end_reason: str | None
    tags: list[str]
    fields: dict[str, str]


class _Conversation:
    def __init__(self, graph: FlowGraph, request: SimulateRequest, now: datetime) -> None:
        self.graph, self.request, self.now = graph, request, now
        self.state: RunState | None = None
        self.timer: TimerRequest | None = None
        self.follows = request.follows
        self.tags = {t.lower() for t in request.tags}
        self.fields = dict(request.fields)
        self.end_reason: str | None = None
        self.transcript: list[SimulatedStep] = []
        self.quota = request.quota_left

    def play(self, event: SimulatedEvent) -> None:
        if event.kind == "follows":
            self.follows = event.follows
            return
        if event.kind == "wait":
            until = self.now + timedelta(minutes=event.minutes)
            while self.timer is not None and self.timer.due_at <= until and self.state is not None:
                self.now = self.timer.due_at
                fired = self.timer
                self.timer = None
                self._apply(event, TimerFired(fired.step_id, fired.seq))
            self.now = until
            return
        if event.kind == "comment":
            if self.state is not None and self.state.status in (RunStatus.WAITING, RunStatus.DELAYED):
                self._record(event, None)
                return
            self.state = new_run("simulated", SIMULATED_IGSID, self.graph)
            self._apply(event, Start(at=self.now, comment_id="simulated-comment"))
            return
        if self.state is None:  # a DM-started flow: the first message starts it
            self.state = new_run("simulated", SIMULATED_IGSID, self.graph)
            self._apply(event, Start(at=self.now, inbound=True))
            return
        self._apply(
            event, Inbound(event.kind, self.now, payload=event.payload, text=event.text or event.payload)
        )

    def _apply(self, event: SimulatedEvent, stimulus: Stimulus) -> None:
        assert self.state is not None
        facts = ContactFacts(
            tags=frozenset(self.tags), fields=dict(self.fields), follows=lambda: self.follows, draw=draw
        )
        account = AccountFacts(status=self.request.account_status, quota_left=self.quota)
        result = advance(self.graph, self.state, stimulus, facts, account, self.now)
        if result.handled:
            self.state = result.state
            self.quota -= len([s for s in result.sends if s.kind != "public_reply"])
            for change in result.changes:
                if change.op == "add_tag":
                    self.tags.add(change.name.lower())
                elif change.op == "remove_tag":
                    self.tags.discard(change.name.lower())
                else:
                    self.fields[change.name] = change.value or ""
            self.timer = result.timer  # every wait and delay sets one; an ended run has none
            if result.end_reason is not None:
                self.end_reason = str(result.end_reason)
        self._record(event, result)

    def _record(self, event: SimulatedEvent, result: Advance | None) -> None:
        state = self.state
        event_view = event.model_dump(exclude_none=True, exclude_defaults=True) | {"kind": event.kind}
        if result is not None and not result.handled:
            event_view["note"] = "not for this run: keyword automations would get it"
        self.transcript.append(
            SimulatedStep(
                at=self.now.isoformat() + "Z",
                event=event_view,
                handled=bool(result and result.handled),
                sends=send_views(result),
                decisions=decision_views(result),
                changes=[
                    {"op": c.op, "name": c.name, "value": c.value} for c in (result.changes if result else [])
                ],
                timer=(
                    {"step_id": result.timer.step_id, "due_at": result.timer.due_at.isoformat() + "Z"}
                    if result and result.timer
                    else None
                ),
                end_reason=str(result.end_reason) if result and result.end_reason else None,
                status=str(state.status) if state else "not_started",
                step_id=state.step_id if state else None,
            )
        )


def send_views(result: Advance | None) -> list[dict[str, Any]]:
    """The sends of an advance as the simulator and the dry run show them."""
    return [
        {"step_id": s.step_id, "kind": str(s.kind), "message": s.payload.get("message")}
        for s in (result.sends if result else [])
    ]


def decision_views(result: Advance | None) -> list[dict[str, Any]]:
    return [
        {"step_id": d.step_id, "outcome": str(d.outcome), "reason": d.reason}
        for d in (result.decisions if result else [])
    ]


def simulate(graph: FlowGraph, request: SimulateRequest, *, now: datetime) -> SimulateView:
    conversation = _Conversation(graph, request, now)
    for event in request.events:
        conversation.play(event)
    state = conversation.state
    return SimulateView(
        transcript=conversation.transcript,
        status=str(state.status) if state else "not_started",
        end_reason=conversation.end_reason,
        tags=sorted(conversation.tags),
        fields=conversation.fields,
    )
