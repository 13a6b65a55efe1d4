"""Flows under concurrency and duplicate deliveries, on the real MariaDB (item 8 of the flows issue,
scaled down for CI): 40 follow-gate conversations at once (each person writes first, so messages
that find no run race with the starts of others), every webhook delivered twice (at the same
moment, on two threads) for 30 % of them; every conversation ends in its expected terminal step and
no step is sent twice."""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from replyflow.adapters.crypto import TokenCipher
from replyflow.clock import utcnow
from replyflow.db.engine import session_factory, session_scope
from replyflow.db.models import FlowRun, OutboundMessage
from replyflow.domain.flows import FOLLOW_GATE_FOLLOWED, FOLLOW_GATE_TAP
from replyflow.domain.messages import EventMessage, queue_priority
from replyflow.domain.webhook_events import parse_body
from replyflow.services import flows
from replyflow.services.access import Principal
from replyflow.services.flow_runs import FlowRunner
from replyflow.services.process_event import EventProcessor
from tests.support_pipeline import (
    KEY,
    DictCache,
    DictCooldowns,
    FixedClock,
    MemoryQueues,
    ScriptedGraph,
    comment_body,
    seed_tenant,
)

pytestmark = pytest.mark.integration

CONVERSATIONS = 40
DUPLICATE_SHARE = 0.3


def _postback(ig_user_id: str, sender: str, mid: str, payload: str, at_ms: int) -> dict[str, Any]:
    item = {
        "sender": {"id": sender},
        "recipient": {"id": ig_user_id},
        "timestamp": at_ms,
        "postback": {"mid": mid, "title": "Tap", "payload": payload},
    }
    return {"object": "instagram", "entry": [{"id": ig_user_id, "time": at_ms, "messaging": [item]}]}


def _message(ig_user_id: str, sender: str, mid: str, text: str, at_ms: int) -> dict[str, Any]:
    item = {
        "sender": {"id": sender},
        "recipient": {"id": ig_user_id},
        "timestamp": at_ms,
        "message": {"mid": mid, "text": text},
    }
    return {"object": "instagram", "entry": [{"id": ig_user_id, "time": at_ms, "messaging": [item]}]}


def test_concurrent_follow_gates_with_duplicate_webhooks(mysql_url: str) -> None:
    sessions = session_factory(mysql_url)
    with session_scope(sessions) as session:
        seeded = seed_tenant(session, TokenCipher(KEY))
        gate = flows.create_follow_gate(
            session,
            DictCache(),
            Principal(seeded.tenant_id, "user", "owner", "user"),
            flows.FollowGateCreate(
                account_id=seeded.account_id,
                keyword="LINK",
                message="The guide",
                link="https://example.com/guide",
            ),
        )
    graph = ScriptedGraph()
    clock = FixedClock(utcnow())
    processor = EventProcessor(
        sessions=sessions,
        cache=DictCache(),
        cooldowns=DictCooldowns(),
        publisher=MemoryQueues(),
        clock=clock,
        flows=FlowRunner(follow_status=graph, cipher=TokenCipher(KEY)),
    )
    rng = random.Random(13)
    people = [f"90{n:013d}" for n in range(CONVERSATIONS)]
    followers = set(rng.sample(people, CONVERSATIONS // 2))
    doubled = set(rng.sample(people, int(CONVERSATIONS * DUPLICATE_SHARE)))
    now_ms = int(clock.current.timestamp() * 1000)

    def deliver(person: str, body: dict[str, Any]) -> None:
        message = EventMessage(
            seeded.tenant_id, seeded.account_id, parse_body(body).events[0], queue_priority("default")
        )
        copies = 2 if person in doubled else 1
        with ThreadPoolExecutor(copies) as pool:
            for future in [pool.submit(processor.process, message) for _ in range(copies)]:
                future.result()

    def conversation(index: int) -> None:
        person = people[index]
        deliver(person, _message(seeded.ig_user_id, person, f"mid-hi-{index}", "hi", now_ms))  # no run yet
        comment = comment_body(
            seeded.ig_user_id, f"1795{index:013d}", "LINK", from_id=person, time=now_ms // 1000
        )
        deliver(person, comment)
        deliver(person, _postback(seeded.ig_user_id, person, f"mid-tap-{index}", FOLLOW_GATE_TAP, now_ms))
        if person not in followers:
            graph.follows[person] = True  # they follow after the nudge, then tap "I followed"
            deliver(
                person,
                _postback(seeded.ig_user_id, person, f"mid-followed-{index}", FOLLOW_GATE_FOLLOWED, now_ms),
            )

    for person in followers:
        graph.follows[person] = True
    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(conversation, i) for i in range(CONVERSATIONS)]:
            future.result()

    with session_scope(sessions) as session:
        runs = session.scalars(select(FlowRun).where(FlowRun.tenant_id == seeded.tenant_id)).all()
        rows = session.scalars(
            select(OutboundMessage).where(OutboundMessage.tenant_id == seeded.tenant_id)
        ).all()
        steps = Counter((row.recipient_id, row.payload["flow_step"]) for row in rows)
        assert len(runs) == CONVERSATIONS
        assert {(run.status, run.end_reason, run.step_id) for run in runs} == {
            ("completed", "completed", "link")
        }
        assert all(run.flow_id == gate.flow.id for run in runs)
        assert max(steps.values()) == 1  # no step sent twice
        for person in people:
            expected = {"offer", "link"} if person in followers else {"offer", "follow_first", "link"}
            assert {step for (who, step) in steps if who == person} == expected, person
        assert len({row.dedupe_key for row in rows}) == len(rows)
