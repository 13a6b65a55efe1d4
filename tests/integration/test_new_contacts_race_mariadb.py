""" "New contacts only" under concurrency, on the real MariaDB: whether a person is new is decided by
the INSERT that creates their contact row (``contacts.claim_first_seen``), not by a read, so two
first events of one person at the same moment count them new exactly once, and a first event that
rolls back leaves the person new for the next one."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from replyflow.adapters.crypto import TokenCipher
from replyflow.clock import utcnow
from replyflow.db.engine import session_factory, session_scope
from replyflow.db.models import AutomationLog, OutboundMessage
from replyflow.db.repositories import contacts as contacts_repo
from replyflow.domain.messages import EventMessage, queue_priority
from replyflow.domain.webhook_events import parse_body
from replyflow.services.process_event import EventProcessor
from tests.support_pipeline import (
    KEY,
    DictCache,
    DictCooldowns,
    FixedClock,
    MemoryQueues,
    comment_body,
    seed_tenant,
)

pytestmark = pytest.mark.integration

PEOPLE = 12


def _claim_while_another_holds(mysql_url: str, *, first_commits: bool) -> tuple[bool, bool, bool]:
    """The first transaction claims and holds; the second claims meanwhile. Returns (first, second,
    whether the second waited for the first)."""
    sessions = session_factory(mysql_url, pool_size=4)
    with session_scope(sessions) as session:
        seeded = seed_tenant(session, TokenCipher(KEY))
    igsid = f"77{time.time_ns() % 10**14:014d}"
    claimed = threading.Event()
    second: dict[str, object] = {}

    def later() -> None:
        claimed.wait(5)
        with session_scope(sessions) as session:
            second["new"] = contacts_repo.claim_first_seen(
                session, seeded.tenant_id, seeded.account_id, igsid
            )
            second["at"] = time.monotonic()

    thread = threading.Thread(target=later)
    thread.start()
    session = sessions()
    try:
        first = contacts_repo.claim_first_seen(session, seeded.tenant_id, seeded.account_id, igsid)
        claimed.set()
        time.sleep(0.5)  # the second INSERT is waiting on the unique key meanwhile
        waited = "at" not in second
        released = time.monotonic()
        if first_commits:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()
    thread.join(10)
    assert float(second["at"]) >= released  # type: ignore[arg-type]
    return first, bool(second["new"]), waited


def test_a_second_first_event_waits_and_is_not_new_once_the_first_commits(mysql_url: str) -> None:
    assert _claim_while_another_holds(mysql_url, first_commits=True) == (True, False, True)


def test_a_first_event_that_rolls_back_leaves_the_person_new(mysql_url: str) -> None:
    assert _claim_while_another_holds(mysql_url, first_commits=False) == (True, True, True)


def test_many_claims_at_once_make_one_new_contact(mysql_url: str) -> None:
    sessions = session_factory(mysql_url, pool_size=8)
    with session_scope(sessions) as session:
        seeded = seed_tenant(session, TokenCipher(KEY))
    igsid = f"78{time.time_ns() % 10**14:014d}"
    start = threading.Barrier(8)

    def claim(_: int) -> bool:
        start.wait(5)
        with session_scope(sessions) as session:
            return contacts_repo.claim_first_seen(session, seeded.tenant_id, seeded.account_id, igsid)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(claim, range(8)))
    assert results.count(True) == 1


def test_two_first_comments_of_a_person_at_once_get_one_answer(mysql_url: str) -> None:
    """Through the processor: per person, two comments processed at the same moment on two threads;
    the new-contacts-only automation answers exactly one of them, the other is skipped
    ``not_new_contact``."""
    sessions = session_factory(mysql_url, pool_size=8)
    with session_scope(sessions) as session:
        seeded = seed_tenant(
            session,
            TokenCipher(KEY),
            automations=[
                {"new_contacts_only": True, "actions": {"private_reply": {"template_text": "Hi new"}}}
            ],
        )
    processor = EventProcessor(
        sessions=sessions,
        cache=DictCache(),
        cooldowns=DictCooldowns(),
        publisher=MemoryQueues(),
        clock=FixedClock(utcnow()),
    )
    people = [f"79{n:014d}" for n in range(PEOPLE)]

    def message(person: str, n: int) -> EventMessage:
        body = comment_body(seeded.ig_user_id, f"1796{n}{person}", "LINK", from_id=person)
        return EventMessage(
            seeded.tenant_id, seeded.account_id, parse_body(body).events[0], queue_priority("default")
        )

    def both(person: str) -> None:
        start = threading.Barrier(2)

        def one(n: int) -> None:
            start.wait(5)
            processor.process(message(person, n))

        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(one, n) for n in (1, 2)]:
                future.result()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(both, people))

    with session_scope(sessions) as session:
        sent = Counter(
            session.scalars(
                select(OutboundMessage.recipient_id).where(OutboundMessage.tenant_id == seeded.tenant_id)
            )
        )
        skipped = Counter(
            session.scalars(
                select(AutomationLog.reason).where(
                    AutomationLog.tenant_id == seeded.tenant_id, AutomationLog.action == "skipped"
                )
            )
        )
    assert len(sent) == PEOPLE, sent  # one private reply per person (its recipient is the comment)
    assert skipped["not_new_contact"] == PEOPLE
