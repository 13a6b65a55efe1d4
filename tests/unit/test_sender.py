"""The sender on SQLite with a scripted Graph client and a fake limiter: every error class settles the
ledger as docs/instagram.md#errors says, redelivery is idempotent, and a batch reports failures
record by record."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from replyflow.adapters.crypto import TokenCipher, WrongKeyError
from replyflow.adapters.graph_client import GraphError, GraphResult
from replyflow.clock import utcnow
from replyflow.db.engine import get_engine, session_factory, session_scope
from replyflow.db.models import Base, InstagramAccount, OutboundMessage, ReplyLog, UsageCounter
from replyflow.db.repositories import ledger
from replyflow.domain.messages import SendJob
from replyflow.observability import logger
from replyflow.services import cache_keys
from replyflow.services.send_reply import (
    SendOutcome,
    SendRetryExhaustedError,
    SendService,
    SentUnsettled,
    release_parked,
)
from replyflow.services.sqs_batch import process_batch
from sender import handler as sender_handler
from tests.support_pipeline import (
    KEY,
    DictCache,
    FakeLimiter,
    FakeSlot,
    FixedClock,
    MemoryQueues,
    ScriptedGraph,
    lambda_context,
    seed_tenant,
)


@dataclass
class World:
    sessions: Any
    queues: MemoryQueues
    limiter: FakeLimiter
    cache: DictCache
    clock: FixedClock
    tenant_id: str = ""
    account_id: str = ""
    ig_user_id: str = ""

    def service(self, graph: ScriptedGraph, **kw: Any) -> SendService:
        kw.setdefault("limiter", self.limiter)
        kw.setdefault("cipher", TokenCipher(KEY))
        return SendService(
            sessions=self.sessions,
            graph=graph,
            publisher=self.queues,
            cache=self.cache,
            clock=self.clock,
            rng=lambda: 0.5,
            **kw,
        )

    def add(self, kind: str = "private_reply", key: str = "c1", **payload: Any) -> SendJob:
        body = payload or {"recipient": {"comment_id": key}, "message": {"text": "hi"}}
        if kind == "public_reply" and not payload:
            body = {"comment_id": key, "message": "thanks!"}
        with session_scope(self.sessions) as session:
            row = ledger.add_outbound(
                session,
                self.tenant_id,
                self.account_id,
                automation_id=None,
                kind=kind,
                dedupe_key=key,
                comment_id=key,
                recipient_id="u1",
                event_key=key,
                payload=body,
                priority="low",
                status="queued",
            )
            assert row is not None
            return SendJob(tenant_id=self.tenant_id, account_id=self.account_id, outbound_id=row.id)

    def row(self, job: SendJob) -> OutboundMessage:
        with session_scope(self.sessions) as session:
            row = ledger.get_outbound(session, job.tenant_id, job.outbound_id)
            assert row is not None
            return row


@pytest.fixture(scope="module")
def module_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sender') / 's.db'}"
    Base.metadata.create_all(get_engine(url))
    return url


@pytest.fixture
def world(module_db: str) -> World:
    sessions = session_factory(module_db)
    w = World(sessions, MemoryQueues(), FakeLimiter(), DictCache(), FixedClock(utcnow()))
    with session_scope(sessions) as session:
        seeded = seed_tenant(session, TokenCipher(KEY), token="secret-token")
    w.tenant_id, w.account_id, w.ig_user_id = seeded.tenant_id, seeded.account_id, seeded.ig_user_id
    return w


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(logger.registered_formatter.format(record)))


@pytest.fixture
def error_lines() -> Iterator[list[dict[str, Any]]]:
    """The sender's error-level log lines (what a log alarm would match)."""
    handler = _Lines()
    handler.setLevel(logging.ERROR)
    logger._logger.addHandler(handler)  # the Powertools logger's stdlib logger
    try:
        yield handler.lines
    finally:
        logger._logger.removeHandler(handler)


def error(
    kind: str, code: int | None = None, subcode: int | None = None, retry: float | None = None
) -> GraphError:
    return GraphError(kind, f"{kind} happened", code, subcode, 400, retry)  # type: ignore[arg-type]


def test_a_private_reply_is_sent_once_and_counted(world: World) -> None:
    graph = ScriptedGraph()
    job = world.add()
    service = world.service(graph)
    assert service.send(job).status == "sent"
    assert service.send(job).status == "noop"  # a redelivered job is harmless
    assert len(graph.calls) == 1
    assert graph.calls[0]["recipient"] == {"comment_id": "c1"}
    assert graph.calls[0]["token"] == "secret-token"
    assert graph.calls[0]["ig_user_id"] == world.ig_user_id
    row = world.row(job)
    assert (row.status, row.attempts) == ("sent", 1)
    assert row.graph_message_id
    with session_scope(world.sessions) as session:
        assert (
            session.scalar(select(UsageCounter.dms_sent).where(UsageCounter.tenant_id == world.tenant_id))
            == 1
        )


def test_public_replies_use_the_replies_endpoint_and_are_not_dms(world: World) -> None:
    graph = ScriptedGraph()
    job = world.add("public_reply", "c9")
    assert world.service(graph).send(job).status == "sent"
    assert graph.calls == [{"comment_id": "c9", "token": "secret-token", "text": "thanks!", "public": True}]
    with session_scope(world.sessions) as session:
        assert (
            session.scalar(select(UsageCounter.dms_sent).where(UsageCounter.tenant_id == world.tenant_id))
            is None
        )


def test_no_slot_is_a_deferral_with_the_limiters_delay(world: World) -> None:
    world.limiter.budget, world.limiter.delay = 0, 42.2
    job = world.add()
    outcome = world.service(ScriptedGraph()).send(job)
    assert (outcome.status, outcome.delay_seconds) == ("deferred", 43)
    row = world.row(job)
    assert (row.status, row.attempts) == ("deferred", 0)  # a deferral is not an attempt
    ((queue, body, delay),) = world.queues.published
    assert (queue, delay, SendJob.from_json(body)) == ("sends-low", 43, job)


@pytest.mark.parametrize(
    ("err", "status", "reason"),
    [
        (error("outside_window", 10, 2018278), "skipped", "outside_window"),
        (error("user_unavailable", 551, 1545041), "skipped", "user_unavailable"),
        (error("already_replied", 100, 2534001), "skipped", "already_replied"),
        (error("permanent", 100, 33), "failed", "permanent:100"),
        (error("ambiguous"), "unknown", "ambiguous"),
    ],
)
def test_error_classes_settle_the_ledger(world: World, err: GraphError, status: str, reason: str) -> None:
    graph = ScriptedGraph(lambda n, p: err)
    job = world.add()
    service = world.service(graph)
    assert service.send(job).status == status
    assert service.send(job).status == "noop"  # never resent, never retried blindly
    assert len(graph.calls) == 1
    assert (world.row(job).status, world.row(job).error_code) == (status, reason)
    # A slot is given back unless the request may have gone out.
    assert world.limiter.released == ([] if status == "unknown" else ["slot1"])
    with session_scope(world.sessions) as session:
        logs = session.scalars(select(ReplyLog).where(ReplyLog.outbound_message_id == job.outbound_id)).all()
        assert [(log.status, log.error_code) for log in logs] == [(status, reason)]


def test_a_throttle_pauses_the_account_and_defers(world: World) -> None:
    graph = ScriptedGraph(lambda n, p: error("throttle", 80002, retry=120.0) if n == 0 else None)
    job = world.add()
    service = world.service(graph)
    outcome = service.send(job)
    assert (outcome.status, outcome.delay_seconds) == ("deferred", 120)
    assert world.limiter.paused == [120.0]
    assert world.limiter.released == ["slot1"]
    assert service.send(job).status == "sent"
    assert len(graph.delivered) == 1


def test_an_app_level_throttle_pauses_every_account(world: World) -> None:
    graph = ScriptedGraph(lambda n, p: error("throttle", 4, retry=300.0) if n == 0 else None)
    job = world.add()
    outcome = world.service(graph).send(job)
    assert (outcome.status, outcome.delay_seconds) == ("deferred", 300)
    assert (world.limiter.paused, world.limiter.paused_all) == ([], [300.0])


@pytest.mark.parametrize(
    ("buc", "app", "paused", "paused_all"),
    [
        (None, None, [], []),
        (89, 89, [], []),
        (90, None, [60.0], []),
        (None, 90, [], [60.0]),  # app-wide usage: every account slows down, not only this one
        (95, 97, [60.0], [60.0]),
    ],
)
def test_usage_near_the_limit_slows_sending_down(
    world: World, buc: int | None, app: int | None, paused: list[float], paused_all: list[float]
) -> None:
    class Usage(ScriptedGraph):
        def _call(self, payload: dict[str, Any], result: GraphResult) -> GraphResult:
            sent = super()._call(payload, result)
            return GraphResult(sent.message_id, sent.recipient_id, usage_pct=buc, app_usage_pct=app)

    assert world.service(Usage()).send(world.add()).status == "sent"
    assert (world.limiter.paused, world.limiter.paused_all) == (paused, paused_all)


def test_transient_errors_back_off_then_fail_the_record(world: World) -> None:
    graph = ScriptedGraph(lambda n, p: error("transient", 2))
    job = world.add()
    service = world.service(graph, max_inline_attempts=3, backoff_base_seconds=4)
    delays = [service.send(job).delay_seconds for _ in range(2)]
    assert delays == [2, 4]  # full jitter (rng 0.5) over 4 s, 8 s
    with pytest.raises(SendRetryExhaustedError):
        service.send(job)
    assert (world.row(job).status, world.row(job).error_code) == ("failed", "transient")
    # Redelivered by SQS (or redriven from the DLQ), it is tried again and can still succeed.
    graph._script = lambda n, p: None
    assert service.send(job).status == "sent"


def test_a_token_error_marks_the_account_parks_and_release_queues_again(world: World) -> None:
    graph = ScriptedGraph(lambda n, p: error("token_invalid", 190, 463))
    world.cache.set_json(cache_keys.account_route_key(world.ig_user_id), {"x": 1}, 60)
    first, second = world.add(key="c1"), world.add(key="c2")
    service = world.service(graph)
    assert service.send(first).status == "parked"
    assert service.send(second).status == "parked"  # the account is marked: no second Graph call
    assert len(graph.calls) == 1
    assert world.cache.get_json(cache_keys.account_route_key(world.ig_user_id)) is None
    with session_scope(world.sessions) as session:
        account = session.get(InstagramAccount, world.account_id)
        assert account is not None
        assert account.status == "needs_reauth"
        account.status = "active"  # the user re-connected
        assert release_parked(session, world.tenant_id, world.account_id, world.queues) == 2
        assert world.queues.pending() == 0  # published only after the commit
    assert world.queues.pending("sends-low") == 2
    graph._script = lambda n, p: None
    for _, body in world.queues.take("sends-"):
        assert service.send(SendJob.from_json(body)).status == "sent"
    assert {world.row(first).status, world.row(second).status} == {"sent"}


class BrokenCipher:
    """A cipher that fails for a reason of its own, not the row's (a bug, an unknown blob version)."""

    def decrypt(self, blob: bytes, *, context: str) -> str:
        raise ValueError("unknown token ciphertext version")


def test_a_token_that_does_not_open_parks_the_account(world: World) -> None:
    with session_scope(world.sessions) as session:
        account = session.get(InstagramAccount, world.account_id)
        assert account is not None  # a ciphertext copied from another account's row
        account.access_token_encrypted = TokenCipher(KEY).encrypt("secret-token", context="another")
    graph = ScriptedGraph()
    job = world.add()
    assert world.service(graph).send(job) == SendOutcome("parked", "needs_reauth")
    assert graph.calls == []
    assert world.limiter.released == ["slot1"]


@pytest.mark.parametrize(
    ("cipher", "raised"),
    [
        (TokenCipher(base64.urlsafe_b64encode(b"w" * 32).decode()), WrongKeyError),  # TOKEN_ENCRYPTION_KEY
        (BrokenCipher(), ValueError),
    ],
    ids=["wrong-key", "broken-cipher"],
)
def test_a_cipher_failure_fails_the_record_instead_of_parking_the_account(
    world: World, cipher: Any, raised: type[Exception]
) -> None:
    graph = ScriptedGraph()
    job = world.add()
    with pytest.raises(raised):
        world.service(graph, cipher=cipher).send(job)
    assert graph.calls == []
    assert world.limiter.released == ["slot1"]
    assert (world.row(job).status, world.row(job).error_code) == ("deferred", "cipher_error")
    with session_scope(world.sessions) as session:
        account = session.get(InstagramAccount, world.account_id)
        assert account is not None
        assert account.status == "active"
    # Once the key is fixed, the redelivered record sends.
    assert world.service(graph).send(job).status == "sent"


def test_a_policy_block_pauses_the_account_alerts_and_release_resumes(
    world: World, error_lines: list[dict[str, Any]]
) -> None:
    graph = ScriptedGraph(lambda n, p: error("policy_block", 368, 1390008))
    world.cache.set_json(cache_keys.account_route_key(world.ig_user_id), {"x": 1}, 60)
    first, second = world.add(key="c1"), world.add(key="c2")
    service = world.service(graph)
    assert service.send(first) == SendOutcome("parked", "policy_block_368")
    assert service.send(second) == SendOutcome("parked", "policy_block_368")
    assert len(graph.calls) == 1  # sending is paused: no second Graph call
    assert world.limiter.released == ["slot1"]
    assert world.queues.published == []  # not retried
    assert world.cache.get_json(cache_keys.account_route_key(world.ig_user_id)) is None
    assert [(world.row(j).status, world.row(j).error_code) for j in (first, second)] == [
        ("parked", "policy_block_368")
    ] * 2
    assert [(line["message"], line["reason"]) for line in error_lines] == [
        ("sending paused: Instagram blocked the account (code 368)", "policy_block_368")
    ]
    with session_scope(world.sessions) as session:
        account = session.get(InstagramAccount, world.account_id)
        assert account is not None
        assert (account.status, account.status_reason) == ("needs_reauth", "policy_block_368")
        account.status, account.status_reason = "active", None  # the user resolved it and re-connected
        assert release_parked(session, world.tenant_id, world.account_id, world.queues) == 2
    graph._script = lambda n, p: None
    for _, body in world.queues.take("sends-"):
        assert service.send(SendJob.from_json(body)).status == "sent"


@pytest.mark.parametrize("code", [3, 10, 200, 299])
def test_a_missing_capability_skips_the_message_without_retrying_and_alerts(
    world: World, error_lines: list[dict[str, Any]], code: int
) -> None:
    graph = ScriptedGraph(lambda n, p: error("misconfigured", code))
    job = world.add()
    service = world.service(graph)
    assert service.send(job) == SendOutcome("skipped", "misconfigured")
    assert service.send(job).status == "noop"
    assert len(graph.calls) == 1
    assert world.queues.published == []
    assert (world.row(job).status, world.row(job).error_code) == ("skipped", f"misconfigured:{code}")
    assert [line["reason"] for line in error_lines] == [f"misconfigured:{code}"]
    with session_scope(world.sessions) as session:
        account = session.get(InstagramAccount, world.account_id)
        assert account is not None
        assert account.status == "active"  # one app-wide misconfiguration is no reason to park a tenant


class RecordingMetrics:
    def __init__(self) -> None:
        self.added: dict[str, float] = {}

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.added[name] = self.added.get(name, 0) + value

    def flush_metrics(self, **_: Any) -> None:
        pass


def test_the_handler_counts_blocked_and_misconfigured_sends_for_alarms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes = {
        1: SendOutcome("parked", "policy_block_368"),
        2: SendOutcome("skipped", "misconfigured"),
        3: SendOutcome("skipped", "outside_window"),
        4: SendOutcome("sent"),
    }

    class Service:
        def send(self, job: SendJob) -> SendOutcome:
            return outcomes[job.outbound_id]

        def attempt(self, job: SendJob) -> SendOutcome | SentUnsettled:
            return self.send(job)

        def attempt_batch(self, jobs: Sequence[SendJob]) -> list[SendOutcome | SentUnsettled | Exception]:
            return [self.attempt(job) for job in jobs]

        def settle_sent(self, sent: Sequence[SentUnsettled]) -> list[SendOutcome | Exception]:
            return [SendOutcome("sent") for _ in sent]

    @dataclass(frozen=True)
    class Deps:
        sender: Service
        retry_backoff: None = None

    recording = RecordingMetrics()
    monkeypatch.setattr(sender_handler, "metrics", recording)
    jobs = [SendJob(tenant_id="t", account_id="a", outbound_id=i).to_json() for i in outcomes]
    event = {"Records": [{"messageId": f"m{i}", "body": body} for i, body in enumerate(jobs)]}
    handler = sender_handler.make_handler(lambda: Deps(Service()))
    assert handler(event, lambda_context()) == {"batchItemFailures": []}
    assert recording.added == {
        "SendsParked": 1,
        "SendsBlocked": 1,
        "SendsSkipped": 2,
        "SendsMisconfigured": 1,
        "MessagesSent": 1,
        "SendsErrored": 0,
    }


def test_a_row_stuck_in_sending_after_the_lease_becomes_unknown_not_resent(world: World) -> None:
    job = world.add()
    with session_scope(world.sessions) as session:
        assert ledger.start_send(
            session, world.tenant_id, job.outbound_id, now=utcnow() - timedelta(minutes=5)
        )
    graph = ScriptedGraph()
    assert world.service(graph).send(job).status == "unknown"
    assert graph.calls == []


def test_a_job_for_a_row_in_flight_is_checked_again_after_the_lease(world: World) -> None:
    """A redelivery inside the lease (a duplicate job, or the local stack's ``--visibility-scale``
    shrinking visibility below the lease) must not drop the job: were the owner dead, nothing would
    ever settle the row."""
    job = world.add()
    with session_scope(world.sessions) as session:
        started = world.clock.current - timedelta(seconds=30)
        assert ledger.start_send(session, world.tenant_id, job.outbound_id, now=started)
    graph = ScriptedGraph()
    service = world.service(graph)
    assert service.send(job) == SendOutcome("noop", "in_flight", 91)  # 90 s of lease left, then 1
    ((queue, body, delay),) = world.queues.published
    assert (queue, delay, SendJob.from_json(body)) == ("sends-low", 91, job)
    assert world.row(job).status == "sending"
    world.clock.current += timedelta(seconds=91)  # the owner never came back
    assert service.send(job) == SendOutcome("unknown", "worker_lost")
    assert graph.calls == []
    assert len(world.queues.published) == 1


class DownLimiter(FakeLimiter):
    """Redis gone: every limiter call raises, from ``down_from`` on (acquire first, then the rest)."""

    def __init__(self, *, acquire_works: bool = False) -> None:
        super().__init__()
        self.acquire_works = acquire_works

    def acquire(
        self, account_id: str, hourly_budget: int, *, history: Callable[[], Sequence[int]] | None = None
    ) -> FakeSlot:
        if self.acquire_works:
            return super().acquire(account_id, hourly_budget, history=history)
        raise ConnectionError("redis is down")

    def release(self, account_id: str, token: str) -> None:
        raise ConnectionError("redis is down")

    def pause(self, account_id: str, seconds: float) -> None:
        raise ConnectionError("redis is down")

    def pause_all(self, seconds: float) -> None:
        raise ConnectionError("redis is down")


def test_a_limiter_outage_defers_the_row_and_it_is_sent_once_redis_is_back(world: World) -> None:
    job = world.add()
    graph = ScriptedGraph()
    outcome = world.service(graph, limiter=DownLimiter()).send(job)
    assert (outcome.status, outcome.reason, outcome.delay_seconds) == ("deferred", "limiter_unavailable", 23)
    assert graph.calls == []
    row = world.row(job)
    assert (row.status, row.attempts) == ("deferred", 0)  # not owned by a worker that is gone
    ((queue, body, delay),) = world.queues.published  # back to be retried, not the DLQ
    assert (queue, SendJob.from_json(body), delay) == ("sends-low", job, 23)
    # Redis is back, even after the lease: sent, not written off as "unknown".
    world.clock.current += timedelta(minutes=5)
    assert world.service(graph).send(job).status == "sent"
    assert len(graph.delivered) == 1


@pytest.mark.parametrize(
    ("script", "status"),
    [
        (lambda n, p: error("transient", 2), "deferred"),
        (lambda n, p: error("throttle", 80002, retry=60.0), "deferred"),
        (lambda n, p: error("throttle", 4, retry=60.0), "deferred"),
        (lambda n, p: error("permanent", 100), "failed"),
        (lambda n, p: error("outside_window", 10, 2534022), "skipped"),
        (lambda n, p: error("token_invalid", 190), "parked"),
        (lambda n, p: error("policy_block", 368), "parked"),
    ],
)
def test_a_redis_failure_after_the_slot_never_leaves_the_row_sending(
    world: World, script: Callable[[int, dict[str, Any]], GraphError], status: str
) -> None:
    job = world.add()
    outcome = world.service(ScriptedGraph(script), limiter=DownLimiter(acquire_works=True)).send(job)
    assert world.row(job).status == status
    assert outcome.status in {status, "retry"}


def test_an_unreadable_token_with_redis_down_still_parks(world: World) -> None:
    with session_scope(world.sessions) as session:
        account = session.get(InstagramAccount, world.account_id)
        assert account is not None
        account.access_token_encrypted = b"garbage"
    job = world.add()
    outcome = world.service(ScriptedGraph(), limiter=DownLimiter(acquire_works=True)).send(job)
    assert (outcome.status, world.row(job).status) == ("parked", "parked")


def test_a_pause_that_fails_after_a_send_keeps_it_sent(world: World) -> None:
    class NearLimit(ScriptedGraph):
        def _call(self, payload: dict[str, Any], result: GraphResult) -> GraphResult:
            sent = super()._call(payload, result)
            return GraphResult(sent.message_id, sent.recipient_id, usage_pct=99, app_usage_pct=99)

    job = world.add()
    assert world.service(NearLimit(), limiter=DownLimiter(acquire_works=True)).send(job).status == "sent"
    assert world.row(job).status == "sent"


def test_a_lost_limiter_window_is_rebuilt_from_the_ledger(world: World) -> None:
    graph = ScriptedGraph()
    service = world.service(graph)
    old = world.add(key="c0")
    assert service.send(old).status == "sent"
    world.clock.current += timedelta(minutes=61)  # out of the window
    sent = [world.add(key=f"c{i}") for i in range(1, 4)]
    for job in sent:
        assert service.send(job).status == "sent"
    world.limiter.window_lost, world.limiter.budget = True, 4  # Redis restarted, empty
    assert service.send(next_job := world.add(key="c4")).status == "sent"
    expected = sorted(int(world.row(j).sent_at.replace(tzinfo=UTC).timestamp() * 1000) for j in sent)  # type: ignore[union-attr]
    assert sorted(world.limiter.rebuilt_from) == expected  # the current row is not counted twice
    assert service.send(world.add(key="c5")).status == "deferred"  # the budget of 4 is used up
    assert world.row(next_job).status == "sent"


def test_a_token_replaced_while_in_flight_retries_instead_of_parking(world: World) -> None:
    def reconnect_then_reject(n: int, payload: dict[str, Any]) -> GraphError | None:
        if n > 0:
            return None
        with session_scope(world.sessions) as session:  # the user re-connects during the call
            account = session.get(InstagramAccount, world.account_id)
            assert account is not None
            account.access_token_encrypted = TokenCipher(KEY).encrypt("new-token", context=account.id)
        return error("token_invalid", 190, 463)  # ... and the old token's call fails

    graph = ScriptedGraph(reconnect_then_reject)
    job = world.add()
    service = world.service(graph)
    outcome = service.send(job)
    assert (outcome.status, outcome.reason) == ("deferred", "token_replaced")
    with session_scope(world.sessions) as session:
        account = session.get(InstagramAccount, world.account_id)
        assert account is not None
        assert account.status == "active"
    ((_, body),) = world.queues.take("sends-")
    assert service.send(SendJob.from_json(body)).status == "sent"
    assert graph.calls[-1]["token"] == "new-token"


def test_an_expired_window_is_skipped_before_calling(world: World) -> None:
    payload: dict[str, Any] = {
        "recipient": {"comment_id": "c1"},
        "message": {"text": "x"},
        "not_after": "2020-01-01T00:00:00",
    }
    job = world.add("private_reply", "c1", **payload)
    graph = ScriptedGraph()
    outcome = world.service(graph).send(job)
    assert (outcome.status, outcome.reason) == ("skipped", "private_reply_window_expired")
    assert graph.calls == []


def test_a_batch_runs_concurrently_and_reports_failures_record_by_record(world: World) -> None:
    jobs = [world.add(key=f"k{i}") for i in range(6)]
    bad = {jobs[1].outbound_id, jobs[4].outbound_id}
    service = world.service(ScriptedGraph())

    def handle(body: str) -> None:
        job = SendJob.from_json(body)
        if job.outbound_id in bad:
            raise RuntimeError("boom")
        service.send(job)

    event = {"Records": [{"messageId": f"m{i}", "body": j.to_json()} for i, j in enumerate(jobs)]}
    result = process_batch(event, handle)
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == ["m1", "m4"]
    assert [world.row(j).status for j in jobs] == ["sent", "queued", "sent", "sent", "queued", "sent"]
    assert json.dumps(result)


def _batch(world: World, graph: ScriptedGraph, jobs: list[SendJob]) -> dict[str, Any]:
    @dataclass(frozen=True)
    class Deps:
        sender: SendService
        retry_backoff: None = None

    service = world.service(graph)
    event = {"Records": [{"messageId": f"m{i}", "body": job.to_json()} for i, job in enumerate(jobs)]}
    return sender_handler.make_handler(lambda: Deps(service))(event, lambda_context())


def _statuses(world: World, jobs: list[SendJob]) -> list[str]:
    with session_scope(world.sessions) as session:
        return [str(ledger.get_outbound(session, world.tenant_id, j.outbound_id).status) for j in jobs]  # type: ignore[union-attr]


def test_a_batchs_sends_that_went_out_are_settled_in_one_transaction(world: World) -> None:
    jobs = [world.add(key=f"b{n}") for n in range(3)]
    graph = ScriptedGraph()
    commits: list[int] = []
    engine = world.sessions.kw["bind"]
    listener = lambda _conn: commits.append(1)  # noqa: E731
    sa_event.listen(engine, "commit", listener)
    try:
        assert _batch(world, graph, jobs) == {"batchItemFailures": []}
    finally:
        sa_event.remove(engine, "commit", listener)
    assert len(graph.calls) == 3
    assert _statuses(world, jobs) == ["sent"] * 3
    assert len(commits) == 1 + 1  # one lease for the three rows, one settle for the three
    with session_scope(world.sessions) as session:
        replies = session.scalars(select(ReplyLog.status).where(ReplyLog.tenant_id == world.tenant_id)).all()
        message_ids = [
            session.scalar(
                select(OutboundMessage.graph_message_id).where(OutboundMessage.id == j.outbound_id)
            )
            for j in jobs
        ]
    assert list(replies) == ["sent"] * 3
    assert None not in message_ids
    assert len(set(message_ids)) == 3  # each row its own Graph message id


def test_a_settle_that_fails_together_settles_each_alone_and_fails_only_its_record(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [world.add(key=f"f{n}") for n in range(3)]
    real = ledger.finish_sent

    def fails_for_f1(session: Any, message_ids: dict[tuple[str, int], str | None], **kw: Any) -> None:
        if (world.tenant_id, jobs[1].outbound_id) in message_ids:
            raise RuntimeError("the database went away")
        real(session, message_ids, **kw)

    monkeypatch.setattr("replyflow.services.send_reply.ledger.finish_sent", fails_for_f1)
    graph = ScriptedGraph()
    assert _batch(world, graph, jobs) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert len(graph.calls) == 3  # each went out once
    # f1 stays "sending": after the lease it becomes unknown, never sent again.
    assert _statuses(world, jobs) == ["sent", "sending", "sent"]
