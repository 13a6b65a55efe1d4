"""The processor's batch path (``EventProcessor.process_many`` through the processor handler) on
SQLite with fakes: one transaction for an SQS batch, and the exactly-once rules of one event at a
time kept: a copy of an event in the batch answers once, an event that fails is retried alone
(its record reported by ``batchItemFailures``) without losing or doubling the others, and a claim
taken concurrently sends the batch down the one-by-one path."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from processor.handler import make_handler
from replyflow.adapters.crypto import TokenCipher
from replyflow.clock import from_epoch
from replyflow.db.engine import get_engine, session_factory, session_scope
from replyflow.db.models import AutomationLog, Base, DailyStat, InboundEvent, OutboundMessage
from replyflow.db.repositories import ledger
from replyflow.domain.messages import EventMessage, SendJob, queue_priority
from replyflow.domain.webhook_events import parse_body
from replyflow.services.process_event import EventProcessor
from tests.support_pipeline import (
    KEY,
    DictCache,
    DictCooldowns,
    FixedClock,
    MemoryQueues,
    Seeded,
    comment_body,
    lambda_context,
    seed_tenant,
)

PRIVATE = {"private_reply": {"template_text": "Hi {{username}}, here: https://x.example"}}
NOW = from_epoch(1795788312) + timedelta(days=1)


@dataclass
class Deps:
    """What the processor handler reads of ``PipelineDeps`` for event messages."""

    processor: EventProcessor
    settings: Any
    retry_backoff: None = None


@dataclass
class Batch:
    processor: EventProcessor
    sessions: Any
    queues: MemoryQueues
    cooldowns: DictCooldowns
    seeded: Seeded
    commits: list[int]

    def body(self, comment_id: str, sender: str) -> str:
        raw = comment_body(self.seeded.ig_user_id, comment_id, from_id=sender, time=int(NOW.timestamp()))
        message = EventMessage(
            tenant_id=self.seeded.tenant_id,
            account_id=self.seeded.account_id,
            priority=queue_priority("default"),
            event=parse_body(raw).events[0],
        )
        return message.to_json()

    def handle(self, bodies: list[str], pool: int = 1) -> dict[str, Any]:
        records = [
            {"messageId": f"m{i}", "body": body, "attributes": {"ApproximateReceiveCount": "1"}}
            for i, body in enumerate(bodies)
        ]
        # The handler splits a batch by the pool on MySQL (one part on SQLite): the URL names MySQL
        # so that ``pool`` decides the parts; the processor's sessions are this SQLite file's.
        settings = {"database_pool_size": pool, "database_url": "mysql+pymysql://unused"}
        deps = Deps(self.processor, settings=type("S", (), settings)())
        handler = make_handler(lambda: cast(Any, deps))
        return handler({"Records": records}, lambda_context())

    def count(self, model: Any) -> int:
        with session_scope(self.sessions) as session:
            return int(
                session.scalar(
                    select(func.count()).select_from(model).where(model.tenant_id == self.seeded.tenant_id)
                )
                or 0
            )

    def sent_jobs(self) -> list[int]:
        return sorted(SendJob.from_json(body).outbound_id for _queue, body in self.queues.take("sends-", 100))


@pytest.fixture(scope="module")
def module_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('processor_batch') / 'p.db'}"
    Base.metadata.create_all(get_engine(url))
    return url


@pytest.fixture
def batch(module_db: str) -> Batch:
    sessions = session_factory(module_db)
    queues, cooldowns = MemoryQueues(), DictCooldowns()
    processor = EventProcessor(
        sessions=sessions, cache=DictCache(), cooldowns=cooldowns, publisher=queues, clock=FixedClock(NOW)
    )
    with session_scope(sessions) as session:
        seeded = seed_tenant(
            session,
            TokenCipher(KEY),
            automations=[{"actions": PRIVATE, "cooldown_seconds": 3600}],
        )
    commits: list[int] = []
    sa_event.listen(sessions.kw["bind"], "commit", lambda _conn: commits.append(1))
    return Batch(processor, sessions, queues, cooldowns, seeded, commits)


def test_a_batch_is_one_transaction_and_a_copy_of_an_event_answers_once(batch: Batch) -> None:
    bodies = [batch.body(f"c{n}", f"s{n}") for n in range(3)]
    del batch.commits[:]
    response = batch.handle([*bodies, bodies[1]])  # the fourth record is a copy of the second
    assert response == {"batchItemFailures": []}
    assert len(batch.commits) == 1
    assert batch.count(InboundEvent) == 3
    assert batch.count(OutboundMessage) == 3
    assert len(batch.sent_jobs()) == 3  # each send job published once
    with session_scope(batch.sessions) as session:
        actions = session.scalars(
            select(AutomationLog.action).where(AutomationLog.tenant_id == batch.seeded.tenant_id)
        ).all()
        stats = dict(
            session.execute(
                select(DailyStat.action, DailyStat.count).where(DailyStat.tenant_id == batch.seeded.tenant_id)
            ).all()
        )
    assert sorted(actions) == ["matched"] * 3 + ["queued"] * 3
    assert stats == {"matched": 3, "queued": 3}


def test_a_batch_is_split_in_a_transaction_per_pooled_connection_copies_together(batch: Batch) -> None:
    bodies = [batch.body(f"p{n}", f"s{n}") for n in range(5)]
    del batch.commits[:]
    response = batch.handle([*bodies, bodies[3], bodies[0]], pool=2)
    assert response == {"batchItemFailures": []}
    assert len(batch.commits) == 2  # two parts at once; no claim race between them
    assert batch.count(InboundEvent) == 5
    assert batch.count(OutboundMessage) == 5
    assert len(batch.sent_jobs()) == 5


def test_one_bad_event_is_retried_alone(batch: Batch, monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = [batch.body(f"c{n}", f"s{n}") for n in range(4)]
    real = ledger.add_outbound

    def fails_on_c2(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("comment_id") == "c2":
            raise RuntimeError("this event's database write failed")
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr("replyflow.services.process_event.ledger.add_outbound", fails_on_c2)
        response = batch.handle(bodies)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert batch.count(InboundEvent) == 3  # the batch's transaction left nothing: each ran alone
    first = batch.sent_jobs()
    assert len(first) == 3
    # c2's cooldown was taken twice (batch, then alone) and given back both times; the others hold theirs.
    assert sorted(key.rsplit(":", 1)[-1] for key in batch.cooldowns.held) == ["s0", "s1", "s3"]

    # SQS redelivers the failed record; a duplicate delivery of a good one comes with it.
    response = batch.handle([bodies[2], bodies[0]])
    assert response == {"batchItemFailures": []}
    assert batch.count(InboundEvent) == 4
    assert batch.count(OutboundMessage) == 4
    (again,) = batch.sent_jobs()
    assert again not in first


def test_a_claim_taken_concurrently_sends_the_batch_one_by_one(
    batch: Batch, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = [batch.body(f"c{n}", f"s{n}") for n in range(3)]
    assert batch.handle([bodies[0]]) == {"batchItemFailures": []}
    batch.sent_jobs()
    # The read of the claims misses c0's (as if its transaction committed right after the read).
    monkeypatch.setattr(ledger, "_claimed", lambda _session, _claims: set())
    del batch.commits[:]
    response = batch.handle(bodies)
    assert response == {"batchItemFailures": []}
    assert len(batch.commits) == 3  # rolled back, then one transaction per event
    assert batch.count(InboundEvent) == 3
    assert batch.count(OutboundMessage) == 3
    assert len(batch.sent_jobs()) == 2


def test_a_failed_publish_fails_only_its_record(batch: Batch, monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = [batch.body(f"c{n}", f"s{n}") for n in range(3)]
    real = batch.queues.publish
    calls: list[int] = []

    def second_fails(queue: str, payloads: Any, *, delay_seconds: int = 0) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("SQS did not answer")
        real(queue, payloads, delay_seconds=delay_seconds)

    monkeypatch.setattr(batch.queues, "publish", second_fails)
    response = batch.handle(bodies)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert batch.count(OutboundMessage) == 3  # committed; the redelivery re-publishes c1's row
    assert len(batch.sent_jobs()) == 2
    assert json.loads(bodies[1])["event"]["comment_id"] == "c1"
