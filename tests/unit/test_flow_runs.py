"""Flows on the pipeline, on SQLite with hand-written fakes: a comment starts the follow gate, taps
route to the run before keyword automations, every step's send is one ledger row, a replayed webhook
changes nothing, a timer fires once, and a run that cannot go on ends with its reason."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from replyflow.adapters.crypto import TokenCipher
from replyflow.clock import from_epoch
from replyflow.db.engine import get_engine, session_factory, session_scope
from replyflow.db.models import (
    AutomationLog,
    Base,
    FlowRun,
    FlowStepStat,
    FlowTimer,
    InstagramAccount,
    OutboundMessage,
)
from replyflow.domain.flows import FOLLOW_GATE_FOLLOWED, FOLLOW_GATE_TAP, follow_gate_graph
from replyflow.domain.messages import EventMessage, queue_priority
from replyflow.domain.webhook_events import parse_body
from replyflow.ports import ContactFields
from replyflow.services import flows
from replyflow.services.access import Principal
from replyflow.services.flow_runs import FlowRunner
from replyflow.services.jobs.common import Deadline
from replyflow.services.jobs.flow_timers import run_flow_timers
from replyflow.services.process_event import EventProcessor, ProcessResult
from tests.conftest import load_event
from tests.support_pipeline import (
    KEY,
    DictCache,
    DictCooldowns,
    FixedClock,
    MemoryQueues,
    ScriptedGraph,
    Seeded,
    comment_body,
    seed_tenant,
)

SENDER = "7351928465012834"  # comment_body's commenter


@dataclass
class MemoryContacts:
    """The ContactStore port in dicts."""

    tags: dict[str, set[str]] = field(default_factory=dict)
    fields: dict[str, dict[str, str]] = field(default_factory=dict)

    def read(self, session: Any, tenant_id: str, account_id: str, igsid: str) -> ContactFields:
        return ContactFields(frozenset(self.tags.get(igsid, set())), dict(self.fields.get(igsid, {})))

    def add_tag(
        self, session: Any, tenant_id: str, account_id: str, igsid: str, tag: str, *, now: datetime
    ) -> None:
        self.tags.setdefault(igsid, set()).add(tag)

    def remove_tag(self, session: Any, tenant_id: str, account_id: str, igsid: str, tag: str) -> None:
        self.tags.setdefault(igsid, set()).discard(tag)

    def set_field(
        self,
        session: Any,
        tenant_id: str,
        account_id: str,
        igsid: str,
        name: str,
        value: str,
        *,
        now: datetime,
    ) -> None:
        self.fields.setdefault(igsid, {})[name] = value


@dataclass
class World:
    processor: EventProcessor
    runner: FlowRunner
    sessions: Any
    queues: MemoryQueues
    clock: FixedClock
    graph: ScriptedGraph
    contacts: MemoryContacts
    seeded: Seeded | None = None
    mids: int = 0

    def seed(self, graph: dict[str, Any] | None = None, keyword: str = "LINK") -> tuple[Seeded, str]:
        with session_scope(self.sessions) as session:
            seeded = seed_tenant(session, TokenCipher(KEY))
            principal = Principal(seeded.tenant_id, "user", "owner", "user")
            if graph is None:
                gate = flows.create_follow_gate(
                    session,
                    DictCache(),
                    principal,
                    flows.FollowGateCreate(
                        account_id=seeded.account_id,
                        keyword=keyword,
                        message="Here is the guide",
                        link="https://example.com/guide",
                    ),
                )
                flow_id = gate.flow.id
            else:
                flow_id = flows.create(
                    session, principal, flows.FlowCreate(account_id=seeded.account_id, name="f", graph=graph)
                ).id
        self.seeded = seeded
        return seeded, flow_id

    def deliver(self, body: dict[str, Any]) -> ProcessResult:
        assert self.seeded is not None
        event = parse_body(body).events[0]
        message = EventMessage(
            tenant_id=self.seeded.tenant_id,
            account_id=self.seeded.account_id,
            priority=queue_priority("default"),
            event=event,
        )
        return self.processor.process(message)

    def comment(self, comment_id: str = "17950000000000001", text: str = "LINK") -> dict[str, Any]:
        assert self.seeded is not None
        return comment_body(
            self.seeded.ig_user_id, comment_id, text, time=int(self.clock.current.timestamp())
        )

    def messaging(
        self, *, payload: str | None = None, text: str | None = None, quick: bool = False
    ) -> dict[str, Any]:
        """A postback, quick reply or text from the commenter, from the samples in events/instagram."""
        assert self.seeded is not None
        self.mids += 1
        name = (
            "dm_postback.json"
            if payload and not quick
            else ("dm_quick_reply.json" if quick else "dm_text.json")
        )
        body = copy.deepcopy(load_event(name))
        entry = body["entry"][0]
        entry["id"] = self.seeded.ig_user_id
        item = entry["messaging"][0]
        item["sender"]["id"] = SENDER
        item["recipient"]["id"] = self.seeded.ig_user_id
        stamp = int(self.clock.current.timestamp() * 1000)
        entry["time"], item["timestamp"] = stamp, stamp
        mid = f"mid-{self.mids}"
        if "postback" in item:
            item["postback"].update(mid=mid, payload=payload)
        else:
            item["message"]["mid"] = mid
            item["message"]["text"] = text or payload or ""
            if quick:
                item["message"]["quick_reply"] = {"payload": payload}
        return body

    def outbound(self) -> list[OutboundMessage]:
        assert self.seeded is not None
        with session_scope(self.sessions) as session:
            return list(
                session.scalars(
                    select(OutboundMessage)
                    .where(OutboundMessage.tenant_id == self.seeded.tenant_id)
                    .order_by(OutboundMessage.id)
                )
            )

    def run_row(self) -> FlowRun:
        assert self.seeded is not None
        with session_scope(self.sessions) as session:
            (run,) = session.scalars(select(FlowRun).where(FlowRun.tenant_id == self.seeded.tenant_id))
            session.expunge(run)
            return run

    def sweep(self) -> dict[str, int]:
        result = run_flow_timers(
            self.sessions,
            self.queues,
            self.runner,
            now=self.clock.current,
            deadline=Deadline.unlimited(),
            tenant_ids=[self.seeded.tenant_id] if self.seeded else None,
        )
        return dict(result.counts)


@pytest.fixture(scope="module")
def module_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('flows') / 'f.db'}"
    Base.metadata.create_all(get_engine(url))
    return url


@pytest.fixture
def world(module_db: str) -> World:
    return make_world(module_db)


def make_world(url: str) -> World:
    sessions = session_factory(url)
    queues, graph, contacts = MemoryQueues(), ScriptedGraph(), MemoryContacts()
    clock = FixedClock(from_epoch(1795788312))
    runner = FlowRunner(contacts=contacts, follow_status=graph, cipher=TokenCipher(KEY))
    processor = EventProcessor(
        sessions=sessions,
        cache=DictCache(),
        cooldowns=DictCooldowns(),
        publisher=queues,
        clock=clock,
        flows=runner,
    )
    return World(processor, runner, sessions, queues, clock, graph, contacts)


def _texts(rows: list[OutboundMessage]) -> list[str]:
    return [str(row.payload["message"]) for row in rows]


def test_the_follow_gate_on_the_pipeline(world: World) -> None:
    world.seed()
    comment = world.comment()
    world.deliver(comment)
    (offer,) = world.outbound()
    assert (offer.kind, offer.status) == ("private_reply", "queued")
    assert offer.payload["recipient"] == {"comment_id": "17950000000000001"}
    assert offer.dedupe_key.startswith("flow:")

    world.clock.current += timedelta(minutes=1)
    tap = world.messaging(payload=FOLLOW_GATE_TAP)
    result = world.deliver(tap)
    assert all(action == "flow_step" for _, action, _ in result.decisions)  # no keyword automation ran
    assert world.graph.profile_reads == [SENDER]  # asked after the tap, never before
    nudge = world.outbound()[-1]
    assert (nudge.kind, nudge.recipient_id) == ("dm", SENDER)
    assert "Follow us first" in str(nudge.payload["message"])

    world.graph.follows[SENDER] = True
    world.clock.current += timedelta(minutes=1)
    followed = world.messaging(payload=FOLLOW_GATE_FOLLOWED)
    world.deliver(followed)
    link = world.outbound()[-1]
    assert "https://example.com/guide" in str(link.payload["message"])
    run = world.run_row()
    assert (run.status, run.end_reason, run.active_key) == ("completed", "completed", None)

    # Replaying every webhook of the conversation changes nothing.
    before = [(r.id, r.status) for r in world.outbound()]
    for body in (comment, tap, followed):
        assert world.deliver(body).duplicate
    assert [(r.id, r.status) for r in world.outbound()] == before
    assert len({r.dedupe_key for r in world.outbound()}) == 3

    with session_scope(world.sessions) as session:
        stats = {
            (s.step_id, s.outcome): s.count
            for s in session.scalars(select(FlowStepStat).where(FlowStepStat.tenant_id == run.tenant_id))
        }
    assert stats[("offer", "sent")] == 1
    assert stats[("wait_tap", "tapped")] == 1
    assert stats[("check", "entered")] == 2
    from replyflow.services import stats as stats_service

    with session_scope(world.sessions) as session:
        principal = Principal(run.tenant_id, "user", "owner", "user")
        view = stats_service.stats(session, DictCache(), principal, now=world.clock.current)
    assert view.flows[run.flow_id]["sent"] == 3
    assert stats[("link", "completed")] == 1


def test_a_message_the_wait_does_not_take_goes_on_to_keyword_automations(world: World) -> None:
    seeded, _ = world.seed()
    world.deliver(world.comment())
    result = world.deliver(world.messaging(text="hello there"))
    assert result.decisions == [(None, "skipped", "no_match")]
    assert world.run_row().status == "waiting"
    # A second comment while the run waits starts nothing new.
    world.deliver(world.comment("17950000000000002"))
    with session_scope(world.sessions) as session:
        reasons = [
            r.reason
            for r in session.scalars(select(AutomationLog).where(AutomationLog.tenant_id == seeded.tenant_id))
        ]
    assert "flow_already_running" in reasons
    assert len(world.outbound()) == 1


CAPTURE = {
    "entry": "comment",
    "start": "ask",
    "steps": [
        {
            "id": "ask",
            "kind": "send",
            "message": {
                "text": "Tap for the guide",
                "buttons": [{"type": "postback", "title": "Go", "payload": "GO"}],
            },
            "next": "w",
        },
        {"id": "w", "kind": "wait", "routes": {"GO": "email"}},
        {
            "id": "email",
            "kind": "send",
            "message": {"text": "Your email?", "quick_replies": [{"content_type": "user_email"}]},
            "next": "w2",
        },
        {"id": "w2", "kind": "wait", "on_text": "cap"},
        {"id": "cap", "kind": "capture", "field": "email", "next": "tag"},
        {"id": "tag", "kind": "tag", "tag": "lead", "next": "d"},
        {"id": "d", "kind": "delay", "minutes": 1, "next": "bye"},
        {"id": "bye", "kind": "send", "message": {"text": "Here it is: https://example.com"}},
    ],
}


def _automation_for(world: World, flow_id: str) -> None:
    assert world.seeded is not None
    from replyflow.services import automations

    with session_scope(world.sessions) as session:
        automations.create(
            session,
            DictCache(),
            Principal(world.seeded.tenant_id, "user", "owner", "user"),
            automations.AutomationCreate(
                account_id=world.seeded.account_id,
                name="capture",
                trigger="comment",
                keywords=["LINK"],
                actions=automations.Actions(start_flow=automations.StartFlowAction(flow_id=flow_id)),
            ),
        )


def test_capture_stores_the_email_and_a_one_minute_delay_fires_once(world: World) -> None:
    _, flow_id = world.seed(CAPTURE)
    _automation_for(world, flow_id)
    world.deliver(world.comment())
    world.deliver(world.messaging(payload="GO"))
    world.deliver(world.messaging(payload="ann@example.com", quick=True))
    assert world.contacts.fields[SENDER] == {"email": "ann@example.com"}
    assert world.contacts.tags[SENDER] == {"lead"}
    assert world.run_row().status == "delayed"
    assert len(world.outbound()) == 2

    assert world.sweep() == {"due": 0}  # not yet due
    world.clock.current += timedelta(minutes=1)
    published = len(world.queues.published)
    assert world.sweep() == {"due": 1, "fired": 1}
    assert world.sweep() == {"due": 0}
    rows = world.outbound()
    assert len(rows) == 3
    assert "example.com" in _texts(rows)[-1]
    assert len(world.queues.published) == published + 1  # its send job, after the commit
    with session_scope(world.sessions) as session:
        timers = list(session.scalars(select(FlowTimer).where(FlowTimer.run_id == world.run_row().id)))
    assert sorted(t.status for t in timers) == ["cancelled", "cancelled", "fired"]
    assert world.run_row().status == "completed"


def test_a_timer_claimed_twice_fires_once(world: World) -> None:
    _, flow_id = world.seed(CAPTURE)
    _automation_for(world, flow_id)
    world.deliver(world.comment())
    world.deliver(world.messaging(payload="GO"))
    world.deliver(world.messaging(payload="ann@example.com", quick=True))
    world.clock.current += timedelta(minutes=2)
    with session_scope(world.sessions) as session:
        (timer,) = session.scalars(
            select(FlowTimer).where(FlowTimer.run_id == world.run_row().id, FlowTimer.status == "pending")
        )
        session.expunge(timer)
    from replyflow.domain.flow_engine import AccountFacts
    from replyflow.services.flow_runs import FlowScope

    assert world.seeded is not None
    outcomes = []
    for _ in range(2):
        with session_scope(world.sessions) as session:
            scope = FlowScope(
                world.seeded.tenant_id, world.seeded.account_id, "default", lambda: AccountFacts()
            )
            outcomes.append(world.runner.fire_timer(session, scope, timer, now=world.clock.current))
    assert outcomes[0] is not None
    assert outcomes[1] is None
    assert len(world.outbound()) == 3


def test_a_run_whose_account_needs_reauth_ends_with_the_reason(world: World) -> None:
    seeded, flow_id = world.seed(CAPTURE)
    _automation_for(world, flow_id)
    world.deliver(world.comment())
    world.deliver(world.messaging(payload="GO"))
    world.deliver(world.messaging(payload="ann@example.com", quick=True))
    with session_scope(world.sessions) as session:
        account = session.get(InstagramAccount, seeded.account_id)
        assert account is not None
        account.status = "needs_reauth"
    world.clock.current += timedelta(minutes=1)
    assert world.sweep()["fired"] == 1
    run = world.run_row()
    assert (run.status, run.end_reason) == ("ended", "needs_reauth")
    assert len(world.outbound()) == 2
    with session_scope(world.sessions) as session:
        dropped = session.scalars(
            select(FlowStepStat).where(
                FlowStepStat.tenant_id == seeded.tenant_id, FlowStepStat.outcome == "dropped"
            )
        ).all()
    assert [(d.step_id, d.reason, d.count) for d in dropped] == [("bye", "needs_reauth", 1)]


def test_a_run_keeps_its_version_when_the_flow_is_edited(world: World) -> None:
    seeded, flow_id = world.seed()
    world.deliver(world.comment())
    edited = follow_gate_graph("New text", "https://example.com/v2")
    with session_scope(world.sessions) as session:
        principal = Principal(seeded.tenant_id, "user", "owner", "user")
        v2 = flows.add_version(session, principal, flow_id, edited)
        flows.activate(session, principal, flow_id, v2.version)
    world.graph.follows[SENDER] = True
    world.deliver(world.messaging(payload=FOLLOW_GATE_TAP))
    assert "https://example.com/guide" in str(world.outbound()[-1].payload["message"])
    assert world.run_row().version == 1


def test_a_captured_email_is_stored_on_the_contact_and_in_the_csv_export(world: World) -> None:
    from replyflow.services import contacts as contacts_service

    world.runner = FlowRunner(follow_status=world.graph, cipher=TokenCipher(KEY))  # the contacts' tables
    world.processor = EventProcessor(
        sessions=world.sessions,
        cache=DictCache(),
        cooldowns=DictCooldowns(),
        publisher=world.queues,
        clock=world.clock,
        flows=world.runner,
    )
    seeded, flow_id = world.seed(CAPTURE)
    _automation_for(world, flow_id)
    world.deliver(world.comment())
    world.deliver(world.messaging(payload="GO"))
    world.deliver(world.messaging(payload="Ann@Example.com", quick=True))
    principal = Principal(seeded.tenant_id, "user", "owner", "user")
    with session_scope(world.sessions) as session:
        chunks, _ = contacts_service.export_csv(session, principal, contacts_service.ContactQuery())
        csv_text = "".join(chunks)
    header, row = csv_text.splitlines()[:2]
    assert "field:email" in header
    assert "ann@example.com" in row
    assert "lead" in row


def test_a_short_timer_goes_on_the_events_queue_with_its_delay_and_fires_once(world: World) -> None:
    from replyflow.domain.messages import FlowTimerJob, decode_event_message
    from replyflow.services.jobs.flow_timers import fire_one

    _, flow_id = world.seed(CAPTURE)
    _automation_for(world, flow_id)
    world.deliver(world.comment())
    world.deliver(world.messaging(payload="GO"))
    world.deliver(world.messaging(payload="ann@example.com", quick=True))
    jobs = [(q, body, delay) for q, body, delay in world.queues.published if q.startswith("events-")]
    waits = [(delay, decode_event_message(body)) for _, body, delay in jobs]
    # The waits' 60-minute timeouts are beyond SQS's 15 minutes (the sweep's); the delay is not.
    assert [delay for delay, _ in waits] == [60]
    delay_job = waits[-1][1]
    assert isinstance(delay_job, FlowTimerJob)
    assert world.seeded is not None
    early = fire_one(
        world.sessions,
        world.queues,
        world.runner,
        delay_job.tenant_id,
        delay_job.timer_id,
        now=world.clock.current,
    )
    assert early is False  # not due yet: left alone
    world.clock.current += timedelta(seconds=60)
    fired = [
        fire_one(
            world.sessions,
            world.queues,
            world.runner,
            delay_job.tenant_id,
            delay_job.timer_id,
            now=world.clock.current,
        )
        for _ in range(2)
    ]
    assert fired == [True, False]
    assert world.sweep() == {"due": 0}
    assert len(world.outbound()) == 3


def per_day_scenario(world: World) -> None:
    """A comment one minute before midnight (UTC) and the tap two minutes later: the step counters
    land on each day, add up to the totals, and show in the flow's stats and in ``/v1/stats``."""
    from replyflow.services import stats as stats_service

    _, flow_id = world.seed()
    day_one = world.clock.current.date()
    world.clock.current = datetime.combine(day_one, time(23, 59))
    world.deliver(world.comment())
    world.clock.current += timedelta(minutes=2)
    day_two = world.clock.current.date()
    world.deliver(world.messaging(payload=FOLLOW_GATE_TAP))
    assert world.seeded is not None
    principal = Principal(world.seeded.tenant_id, "user", "owner", "user")
    with session_scope(world.sessions) as session:
        view = flows.stats(session, principal, flow_id, since=day_one, until=day_two, now=world.clock.current)
        only_first = flows.stats(
            session, principal, flow_id, since=day_one, until=day_one, now=day_two_noon(day_two)
        )
        overall = stats_service.stats(session, DictCache(), principal, since=day_one, now=world.clock.current)
    per_day: dict[tuple[Any, str, str], int] = {}
    for row in view.days:
        per_day[(row.date, row.step_id, row.outcome)] = (
            per_day.get((row.date, row.step_id, row.outcome), 0) + row.count
        )
    assert per_day[(day_one, "offer", "sent")] == 1
    assert per_day[(day_one, "wait_tap", "entered")] == 1
    assert per_day[(day_two, "wait_tap", "tapped")] == 1
    assert per_day[(day_two, "check", "entered")] == 1
    assert not any(day == day_one and step == "check" for day, step, _ in per_day)
    assert (view.since, view.until) == (day_one, day_two)
    totals: dict[str, int] = {}
    for row in view.days:
        totals[row.outcome] = totals.get(row.outcome, 0) + row.count
    assert totals == view.totals  # every count of this flow happened in the range
    assert {row.date for row in only_first.days} == {day_one}
    by_day = {(d.date, d.flow_id): d.counts for d in overall.flow_days}
    assert by_day[(day_one, flow_id)]["sent"] == 1
    assert by_day[(day_two, flow_id)]["tapped"] == 1


def day_two_noon(day: date) -> datetime:
    return datetime.combine(day, time(12, 0))


def test_step_counters_are_kept_per_day(world: World) -> None:
    per_day_scenario(world)
