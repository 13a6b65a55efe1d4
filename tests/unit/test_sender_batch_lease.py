"""A batch's rows leased together (``SendService.attempt_batch``): one transaction owns every row the
batch can send now; a row that is not sendable, a duplicate, or a lease that conflicts or fails takes
its record's own path alone, as a batch of single sends would; nothing is sent twice."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import update

from replyflow.adapters.crypto import TokenCipher
from replyflow.db.engine import session_scope
from replyflow.db.models import OutboundMessage
from replyflow.db.repositories import plans
from replyflow.domain.messages import SendJob
from replyflow.ports import SlotRequest
from replyflow.services.send_reply import SEND_CONCURRENCY, SendOutcome, SentUnsettled
from tests.support_pipeline import KEY, FakeLimiter, FakeSlot, ScriptedGraph, seed_tenant
from tests.unit.test_sender import World, _batch, _statuses, module_db, world
from tests.unit.test_sender_quota import dms, fill_to

__all__ = ["module_db", "world"]


def _commits(world: World) -> tuple[list[int], Any]:
    commits: list[int] = []
    engine = world.sessions.kw["bind"]

    def listener(_conn: Any) -> None:
        commits.append(1)

    sa_event.listen(engine, "commit", listener)
    return commits, lambda: sa_event.remove(engine, "commit", listener)


def _statuses_of(attempts: list[SendOutcome | SentUnsettled | Exception]) -> list[str]:
    return [
        "unsettled" if isinstance(a, SentUnsettled) else a.status if isinstance(a, SendOutcome) else "error"
        for a in attempts
    ]


def test_a_batch_owns_its_rows_in_one_transaction_before_the_graph_calls(world: World) -> None:
    jobs = [world.add(key=f"l{n}") for n in range(4)]
    graph = ScriptedGraph()
    commits, stop = _commits(world)
    try:
        attempts = world.service(graph).attempt_batch(jobs)
    finally:
        stop()
    assert _statuses_of(attempts) == ["unsettled"] * 4
    assert len(commits) == 1  # the lease; the settle comes after (settle_sent)
    assert _statuses(world, jobs) == ["sending"] * 4
    assert [world.row(j).attempts for j in jobs] == [1] * 4
    assert len(graph.calls) == 4


def _second_tenant(world: World) -> World:
    """Another tenant (one account) on the same database and fakes as ``world``."""
    other = World(world.sessions, world.queues, world.limiter, world.cache, world.clock)
    with session_scope(world.sessions) as session:
        seeded = seed_tenant(session, TokenCipher(KEY), token="other-token")
    other.tenant_id, other.account_id = seeded.tenant_id, seeded.account_id
    return other


def _outbound_statements(world: World) -> tuple[list[str], Any]:
    """The first words of each statement on ``outbound_messages`` while listening (SELECT/UPDATE)."""
    seen: list[str] = []
    engine = world.sessions.kw["bind"]

    def listener(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "outbound_messages" in statement.split(" WHERE ")[0]:
            seen.append(statement.split(None, 1)[0])

    sa_event.listen(engine, "before_cursor_execute", listener)
    return seen, lambda: sa_event.remove(engine, "before_cursor_execute", listener)


def test_a_batch_of_two_tenants_is_leased_and_settled_in_one_statement_each(world: World) -> None:
    other = _second_tenant(world)
    jobs = [world.add(key="t1"), other.add(key="t2"), world.add(key="t3"), other.add(key="t4")]
    graph = ScriptedGraph()
    seen, stop = _outbound_statements(world)
    try:
        assert _batch(world, graph, jobs) == {"batchItemFailures": []}
    finally:
        stop()
    assert seen == ["SELECT", "UPDATE", "UPDATE"]  # the lease's read and ownership, the settle
    assert _statuses(world, jobs[0::2]) == ["sent"] * 2
    assert _statuses(other, jobs[1::2]) == ["sent"] * 2
    assert sorted(c["token"] for c in graph.calls) == ["other-token"] * 2 + ["secret-token"] * 2
    assert (dms(world), dms(other)) == (2, 2)  # each tenant's quota counts its own


def test_a_job_naming_another_tenants_row_is_not_leased_with_the_batch(world: World) -> None:
    other = _second_tenant(world)
    mine, theirs = world.add(key="i1"), other.add(key="i2")
    forged = SendJob(tenant_id=world.tenant_id, account_id=world.account_id, outbound_id=theirs.outbound_id)
    attempts = world.service(ScriptedGraph()).attempt_batch([mine, forged, theirs])
    assert _statuses_of(attempts) == ["unsettled", "noop", "unsettled"]
    assert [a.reason for a in attempts if isinstance(a, SendOutcome)] == ["missing"]
    assert isinstance(attempts[2], SentUnsettled)
    assert attempts[2].job.tenant_id == other.tenant_id


def test_a_row_already_leased_by_another_worker_is_answered_like_today(world: World) -> None:
    jobs = [world.add(key=f"o{n}") for n in range(3)]
    with session_scope(world.sessions) as session:  # another worker owns o1 and is calling Graph
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == jobs[1].outbound_id)
            .values(status="sending", attempts=1, updated_at=world.clock.now())
        )
    graph = ScriptedGraph()
    assert _batch(world, graph, jobs) == {"batchItemFailures": []}
    assert len(graph.calls) == 2
    assert _statuses(world, jobs) == ["sent", "sending", "sent"]
    assert world.row(jobs[1]).attempts == 1  # not counted again
    # checked again when the other worker's lease ends
    assert [body for _q, body, _delay in world.queues.published] == [jobs[1].to_json()]


def test_a_duplicate_in_one_batch_is_sent_once(world: World) -> None:
    first, second = world.add(key="d1"), world.add(key="d2")
    graph = ScriptedGraph()
    assert _batch(world, graph, [first, first, second, first]) == {"batchItemFailures": []}
    assert len(graph.calls) == 2
    assert _statuses(world, [first, second]) == ["sent", "sent"]
    assert world.row(first).attempts == 1


def test_a_bad_record_does_not_fail_the_others(world: World) -> None:
    good = [world.add(key=f"g{n}") for n in range(2)]
    missing = SendJob(tenant_id=world.tenant_id, account_id=world.account_id, outbound_id=10**9)
    other_account = SendJob(
        tenant_id=world.tenant_id, account_id="acct-other", outbound_id=good[0].outbound_id
    )
    attempts = world.service(ScriptedGraph()).attempt_batch([missing, good[0], other_account, good[1]])
    assert _statuses_of(attempts) == ["noop", "unsettled", "noop", "unsettled"]
    assert [a.reason for a in attempts if isinstance(a, SendOutcome)] == ["missing", "missing"]


def test_a_lease_that_conflicts_falls_back_to_each_record_alone(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [world.add(key=f"c{n}") for n in range(3)]
    monkeypatch.setattr("replyflow.services.send_reply.ledger.start_sends", lambda *_a, **_k: 2)
    graph = ScriptedGraph()
    assert _batch(world, graph, jobs) == {"batchItemFailures": []}
    assert len(graph.calls) == 3  # each once, on its own path
    assert _statuses(world, jobs) == ["sent"] * 3
    assert [world.row(j).attempts for j in jobs] == [1] * 3  # the rolled-back lease counted nothing


def test_a_lease_that_fails_falls_back_to_each_record_alone(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [world.add(key=f"x{n}") for n in range(2)]

    def down(*_a: Any, **_k: Any) -> list[OutboundMessage]:
        raise RuntimeError("lock wait timeout")

    monkeypatch.setattr("replyflow.services.send_reply.ledger.outbound_for_send", down)
    graph = ScriptedGraph()
    assert _batch(world, graph, jobs) == {"batchItemFailures": []}
    assert len(graph.calls) == 2
    assert _statuses(world, jobs) == ["sent"] * 2


def test_a_tenant_being_moved_takes_its_own_path(world: World) -> None:
    jobs = [world.add(key=f"m{n}") for n in range(2)]

    def moving(_tenant: str) -> str:
        raise RuntimeError("tenant moving")

    commits, stop = _commits(world)
    try:
        attempts = world.service(ScriptedGraph(), transaction_group=moving).attempt_batch(jobs)
    finally:
        stop()
    assert _statuses_of(attempts) == ["unsettled"] * 2
    assert len(commits) == 2  # a lease each, as before


def test_dms_the_quota_cannot_all_cover_are_reserved_one_by_one(world: World) -> None:
    fill_to(world, 1)
    jobs = [world.add(key=f"q{n}") for n in range(2)]
    graph = ScriptedGraph()
    assert _batch(world, graph, jobs) == {"batchItemFailures": []}
    assert len(graph.calls) == 1
    assert sorted(_statuses(world, jobs)) == ["sent", "skipped"]
    with session_scope(world.sessions) as session:
        quota = plans.plan_for_tenant(session, world.tenant_id).monthly_dm_quota
    assert dms(world) == quota  # the one left went out; the skipped DM holds nothing


def test_the_batch_reserves_its_dms_together(world: World) -> None:
    fill_to(world, 3)
    start = dms(world)
    jobs = [world.add(key=f"r{n}") for n in range(3)]
    attempts = world.service(ScriptedGraph()).attempt_batch(jobs)
    assert _statuses_of(attempts) == ["unsettled"] * 3
    assert dms(world) == (start or 0) + 3
    assert all(isinstance(a, SentUnsettled) and a.leased.quota_period for a in attempts)


# -- the batch's limiter slots, asked for together (``SendLimiter.acquire_many``) --------------------


class _PartlyDown(FakeLimiter):
    """Answers the batch with an error for the requests at ``down`` (a cluster node that did not)."""

    def __init__(self, down: set[int]) -> None:
        super().__init__()
        self.down = down

    def acquire_many(self, requests: Sequence[SlotRequest]) -> list[FakeSlot | Exception]:
        answers = super().acquire_many(requests)
        return [ConnectionError("node down") if i in self.down else a for i, a in enumerate(answers)]


class _BatchDown(FakeLimiter):
    def acquire_many(self, requests: Sequence[SlotRequest]) -> list[FakeSlot | Exception]:
        raise ConnectionError("redis is down")


def test_a_batch_asks_the_limiter_once_for_all_its_leased_rows(world: World) -> None:
    jobs = [world.add(key=f"s{n}") for n in range(4)]
    graph = ScriptedGraph()
    assert _batch(world, graph, jobs) == {"batchItemFailures": []}
    assert world.limiter.batches == [4]
    assert world.limiter.granted == 4
    assert _statuses(world, jobs) == ["sent"] * 4


def test_a_partial_grant_sends_what_fits_and_defers_the_rest(world: World) -> None:
    jobs = [world.add(key=f"p{n}") for n in range(4)]
    world.limiter.budget = 2
    graph = ScriptedGraph()
    assert _batch(world, graph, jobs) == {"batchItemFailures": []}
    assert len(graph.calls) == 2
    statuses = _statuses(world, jobs)
    assert sorted(statuses) == ["deferred", "deferred", "sent", "sent"]
    deferred = [j for j, s in zip(jobs, statuses, strict=True) if s == "deferred"]
    assert [world.row(j).error_code for j in deferred] == ["rate_limited"] * 2
    assert [world.row(j).attempts for j in deferred] == [0, 0]  # a deferral is not an attempt
    assert sorted(body for _q, body, _d in world.queues.published) == sorted(j.to_json() for j in deferred)
    assert {delay for _q, _b, delay in world.queues.published} == {30}


def test_a_request_the_limiter_did_not_answer_waits_and_the_others_go_out(world: World) -> None:
    jobs = [world.add(key=f"u{n}") for n in range(3)]
    graph = ScriptedGraph()
    service = world.service(graph, limiter=_PartlyDown({1}))
    attempts = service.attempt_batch(jobs)
    assert _statuses_of(attempts) == ["unsettled", "deferred", "unsettled"]
    assert world.row(jobs[1]).error_code == "limiter_unavailable"
    assert len(graph.calls) == 2


def test_a_limiter_down_for_the_whole_batch_defers_every_row_and_sends_nothing(world: World) -> None:
    jobs = [world.add(key=f"w{n}") for n in range(3)]
    graph = ScriptedGraph()
    attempts = world.service(graph, limiter=_BatchDown()).attempt_batch(jobs)
    assert _statuses_of(attempts) == ["deferred"] * 3
    assert _statuses(world, jobs) == ["deferred"] * 3  # never left "sending" (it would end "unknown")
    assert graph.calls == []


def test_a_batch_rebuilds_a_lost_limiter_window_from_the_ledger(world: World) -> None:
    sent = world.add(key="h0")
    assert _batch(world, ScriptedGraph(), [sent]) == {"batchItemFailures": []}
    world.limiter.window_lost = True  # a Redis restart
    jobs = [world.add(key=f"h{n}") for n in range(1, 3)]
    assert _batch(world, ScriptedGraph(), jobs) == {"batchItemFailures": []}
    # The first request's history: h0 sent, and h2 leased with it (a row being sent counts); not h1.
    assert len(world.limiter.rebuilt_from) == 2
    assert world.limiter.granted == 4
    assert _statuses(world, jobs) == ["sent", "sent"]


def test_a_calling_threads_send_threads_are_kept_for_its_next_batch_and_its_own(world: World) -> None:
    threads: list[threading.Thread] = []  # the objects, so that a thread that ended is never mistaken

    def record(_n: int, _payload: dict[str, Any]) -> None:
        threads.append(threading.current_thread())

    service = world.service(ScriptedGraph(record))
    for batch in range(12):
        service.attempt_batch([world.add(key=f"t{batch}.{n}") for n in range(2)])
    mine = set(threads)
    # Twelve batches on at most the pool's ten threads (a pool per batch starts one or two per batch).
    assert len(threads) == 24
    assert len(mine) <= SEND_CONCURRENCY
    threads.clear()
    other = threading.Thread(target=service.attempt_batch, args=([world.add(key=f"o{n}") for n in range(2)],))
    other.start()
    other.join()
    assert len(threads) == 2
    assert not set(threads) & mine  # another calling thread (a concurrent batch) has a pool of its own
