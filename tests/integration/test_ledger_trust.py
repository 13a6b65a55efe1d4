"""What the ledger promises when Redis fails or a reconnect races in-flight work, on the real MariaDB
and a real Redis (a private ``redis-server`` that the test stops and starts again, or the shared one
under a namespace of the test's own):

- a Redis outage during sends writes nothing off: every message ends ``sent``;
- a limiter window lost with Redis's data is rebuilt from ``sent_at``: the hourly budget holds;
- a reconnect racing a park (threads with their own sessions, the interleaving forced with hooks)
  leaves no row parked on an active account.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.crypto import TokenCipher
from replyflow.adapters.graph_client import GraphError
from replyflow.adapters.rate_limiter import RedisRateLimiter
from replyflow.adapters.redis_client import redis_options
from replyflow.clock import utcnow
from replyflow.db.engine import session_factory, session_scope
from replyflow.db.models import InstagramAccount, OutboundMessage
from replyflow.db.repositories import ledger
from replyflow.domain.messages import EventMessage, SendJob, queue_priority
from replyflow.domain.webhook_events import parse_body
from replyflow.services import accounts
from replyflow.services.process_event import EventProcessor
from replyflow.services.send_reply import SendService, release_parked
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

pytestmark = pytest.mark.integration

PRIVATE = {"private_reply": {"template_text": "Hi {{username}}, here: https://x.example"}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own on a free port, without persistence: a restart loses all."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.proc = subprocess.Popen([*args, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL)
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                probe.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sessions(mysql_url: str) -> sessionmaker[Session]:
    return session_factory(mysql_url, pool_size=4)


def _seed(sessions: sessionmaker[Session], **kw: Any) -> Seeded:
    with session_scope(sessions) as session:
        return seed_tenant(session, TokenCipher(KEY), token="secret-token", **kw)


def _add_rows(sessions: sessionmaker[Session], seeded: Seeded, n: int) -> list[SendJob]:
    jobs = []
    with session_scope(sessions) as session:
        for i in range(n):
            key = f"c{uuid.uuid4().hex[:12]}{i}"
            row = ledger.add_outbound(
                session,
                seeded.tenant_id,
                seeded.account_id,
                automation_id=None,
                kind="private_reply",
                dedupe_key=key,
                comment_id=key,
                recipient_id="u1",
                event_key=key,
                payload={"recipient": {"comment_id": key}, "message": {"text": "hi"}},
                priority="default",
                status="queued",
            )
            assert row is not None
            jobs.append(SendJob(tenant_id=seeded.tenant_id, account_id=seeded.account_id, outbound_id=row.id))
    return jobs


def _sender(
    sessions: sessionmaker[Session],
    graph: ScriptedGraph,
    limiter: RedisRateLimiter,
    queues: MemoryQueues,
    clock: FixedClock,
) -> SendService:
    return SendService(
        sessions=sessions,
        graph=graph,
        limiter=limiter,
        cipher=TokenCipher(KEY),
        publisher=queues,
        cache=DictCache(),
        clock=clock,
        rng=lambda: 0.5,
    )


def _statuses(sessions: sessionmaker[Session], seeded: Seeded) -> dict[str, int]:
    with session_scope(sessions) as session:
        rows = session.scalars(
            select(OutboundMessage).where(OutboundMessage.tenant_id == seeded.tenant_id)
        ).all()
        out: dict[str, int] = {}
        for row in rows:
            out[row.status] = out.get(row.status, 0) + 1
        return out


def test_a_redis_outage_during_sends_writes_no_message_off(
    sessions: sessionmaker[Session], private_redis: PrivateRedis, tmp_path: Path
) -> None:
    seeded = _seed(sessions)
    jobs = _add_rows(sessions, seeded, 40)
    queues, clock = MemoryQueues(), FixedClock(utcnow())
    limiter = RedisRateLimiter(redis.Redis.from_url(private_redis.url, **redis_options()), namespace="rfout")

    def script(n: int, payload: dict[str, Any]) -> GraphError | None:
        if n == 10:  # Redis dies while this call is in flight, and the call fails: the release fails too
            private_redis.stop()
            return GraphError("transient", "temporarily unavailable", 2, None, 503, None)
        return None

    graph = ScriptedGraph(script)
    sender = _sender(sessions, graph, limiter, queues, clock)
    queues.publish("sends-default", [job.to_json() for job in jobs])
    rounds, restarted = 0, False
    while queues.pending("sends-"):
        rounds += 1
        assert rounds < 200, _statuses(sessions, seeded)
        if not restarted and rounds > 15:  # a while of outage, then Redis is back, empty
            clock.current += timedelta(minutes=5)  # long enough that a row left "sending" is written off
            private_redis.start()
            restarted = True
        for queue, body in queues.take("sends-", limit=10):
            try:
                sender.send(SendJob.from_json(body))
            except Exception:
                queues.publish(queue, [body])  # the record failed: SQS delivers it again
    assert restarted
    assert _statuses(sessions, seeded) == {"sent": 40}  # none unknown, none stuck
    assert len(graph.delivered) == 40
    # Redis came back empty; the window was rebuilt from the ledger, not started from zero.
    assert limiter.used(seeded.account_id) == 40  # 10 rebuilt from sent_at + 30 sent since


def test_a_lost_limiter_window_is_rebuilt_from_sent_at_and_keeps_the_hourly_budget(
    sessions: sessionmaker[Session], redis_url: str, redis_namespace: str
) -> None:
    seeded = _seed(sessions, budget=5)
    client = redis.Redis.from_url(redis_url, **redis_options())
    limiter = RedisRateLimiter(client, namespace=redis_namespace, per_second=1000)
    queues, clock, graph = MemoryQueues(), FixedClock(utcnow()), ScriptedGraph()
    sender = _sender(sessions, graph, limiter, queues, clock)
    first, more = (jobs := _add_rows(sessions, seeded, 8))[:5], jobs[5:]
    assert [sender.send(job).status for job in first] == ["sent"] * 5
    # Redis lost its data (a restart, a failover to an empty replica): the account's keys are gone.
    assert client.delete(*client.keys(f"{redis_namespace}:rl:{{{seeded.account_id}}}:*")) >= 1
    outcomes = [sender.send(job) for job in more]
    assert [(o.status, o.reason) for o in outcomes] == [("deferred", "rate_limited")] * 3
    assert {o.delay_seconds for o in outcomes} == {900}  # an hour away, capped at SQS's longest delay
    assert limiter.used(seeded.account_id) == 5
    assert len(graph.delivered) == 5
    client.delete(*client.keys(f"{redis_namespace}:*"))


def _event(seeded: Seeded) -> EventMessage:
    body = comment_body(seeded.ig_user_id, f"179{uuid.uuid4().int % 10**14:014d}", text="LINK")
    return EventMessage(
        tenant_id=seeded.tenant_id,
        account_id=seeded.account_id,
        priority=queue_priority("default"),
        event=parse_body(body).events[0],
    )


def _reconnect(
    session: Session, seeded: Seeded, queues: MemoryQueues, then: Callable[[], None] = lambda: None
) -> None:
    def on_reconnect(s: Session, tenant_id: str, account_id: str) -> int:
        released = release_parked(s, tenant_id, account_id, queues)
        then()  # the interleaving under test happens between this release and the commit
        return released

    accounts.store_connection(
        session,
        DictCache(),
        TokenCipher(KEY),
        tenant_id=seeded.tenant_id,
        ig_user_id=seeded.ig_user_id,
        username="brand",
        access_token="fresh-token",
        expires_in=3600,
        hourly_send_budget=200,
        on_reconnect=on_reconnect,
        now=utcnow(),
    )


def _set_status(sessions: sessionmaker[Session], seeded: Seeded, status: str) -> None:
    with session_scope(sessions) as session:
        account = session.get(InstagramAccount, seeded.account_id)
        assert account is not None
        account.status = status


def _parked_on_active(sessions: sessionmaker[Session], seeded: Seeded) -> list[int]:
    with session_scope(sessions) as session:
        account = session.get(InstagramAccount, seeded.account_id)
        assert account is not None
        assert account.status == "active"
        return [r.id for r in ledger.list_by_status(session, seeded.tenant_id, seeded.account_id, ["parked"])]


def test_a_reconnect_committing_while_the_processor_parks_leaves_nothing_parked(
    sessions: sessionmaker[Session], mysql_url: str
) -> None:
    """The processor parks on a status it read before the reconnect; the reconnect's release runs
    and commits while the parked row is not yet committed."""
    seeded = _seed(sessions, automations=[{"actions": PRIVATE}])
    _set_status(sessions, seeded, "needs_reauth")
    queues = MemoryQueues()
    parked_pending, reconnected = threading.Event(), threading.Event()
    processor_sessions = sessionmaker(bind=session_factory(mysql_url, pool_size=4).kw["bind"])

    @event.listens_for(processor_sessions, "before_commit")
    def hold(session: Session) -> None:
        if parked_pending.is_set():
            return
        parked = ledger.list_by_status(session, seeded.tenant_id, seeded.account_id, ["parked"])
        if parked:  # inserted by this transaction, not committed yet
            parked_pending.set()
            assert reconnected.wait(20), "the reconnect did not finish"

    processor = EventProcessor(
        sessions=processor_sessions, cache=DictCache(), cooldowns=DictCooldowns(), publisher=queues
    )
    errors: list[BaseException] = []

    def reconnect() -> None:
        try:
            assert parked_pending.wait(20)
            with session_scope(sessions) as session:
                _reconnect(session, seeded, queues)
        except BaseException as error:
            errors.append(error)
        finally:
            reconnected.set()

    thread = threading.Thread(target=reconnect)
    thread.start()
    result = processor.process(_event(seeded))
    thread.join(30)
    assert errors == []
    assert len(result.parked) == 1
    assert _parked_on_active(sessions, seeded) == []
    assert [SendJob.from_json(b).outbound_id for _, b, _ in queues.published] == result.parked


def test_a_sender_parking_between_the_reconnects_release_and_commit_leaves_nothing_parked(
    sessions: sessionmaker[Session], redis_url: str, redis_namespace: str
) -> None:
    """The sender reads ``needs_reauth``, parks, commits and re-checks, all while the reconnect has
    released (seeing no parked row yet) but not committed."""
    seeded = _seed(sessions)
    (job,) = _add_rows(sessions, seeded, 1)
    _set_status(sessions, seeded, "needs_reauth")
    queues = MemoryQueues()
    limiter = RedisRateLimiter(redis.Redis.from_url(redis_url, **redis_options()), namespace=redis_namespace)
    sender = _sender(sessions, ScriptedGraph(), limiter, queues, FixedClock(utcnow()))
    outcomes: list[str] = []

    def park_in_between() -> None:
        thread = threading.Thread(target=lambda: outcomes.append(sender.send(job).status))
        thread.start()
        thread.join(20)

    with session_scope(sessions) as session:
        _reconnect(session, seeded, queues, then=park_in_between)
    assert outcomes == ["parked"]
    assert _parked_on_active(sessions, seeded) == []
    ((_, body),) = queues.take("sends-")
    assert sender.send(SendJob.from_json(body)).status == "sent"


def test_the_ledger_sweep_on_mariadb_settles_republishes_and_releases(
    sessions: sessionmaker[Session],
) -> None:
    from replyflow.services.jobs.common import Deadline
    from replyflow.services.jobs.ledger_sweep import run_ledger_sweep, thresholds

    seeded = _seed(sessions)
    lost_call, lost_job, parked = (job.outbound_id for job in _add_rows(sessions, seeded, 3))
    now = utcnow().replace(microsecond=0)
    limits = thresholds()
    with session_scope(sessions) as session:
        for row_id, status, age in (
            (lost_call, "sending", limits["sending"]),
            (lost_job, "queued", limits["queued"]),
            (parked, "parked", timedelta(0)),
        ):
            row = ledger.get_outbound(session, seeded.tenant_id, row_id)
            assert row is not None
            row.status, row.updated_at = status, now - age - timedelta(seconds=1)
    queues = MemoryQueues()
    first = run_ledger_sweep(sessions, queues, now=now, deadline=Deadline.unlimited())
    second = run_ledger_sweep(sessions, queues, now=now, deadline=Deadline.unlimited())
    assert {k: v for k, v in first.counts.items() if v} == {
        "sending_settled_unknown": 1,
        "queued_republished": 1,
        "parked_released": 1,
    }
    assert sum(second.counts.values()) == 0  # idempotent
    assert sorted(SendJob.from_json(b).outbound_id for _, b, _ in queues.published) == [lost_job, parked]
    with session_scope(sessions) as session:
        rows = session.scalars(select(OutboundMessage).where(OutboundMessage.tenant_id == seeded.tenant_id))
        statuses = {row.id: row.status for row in rows}
    assert statuses == {lost_call: "unknown", lost_job: "queued", parked: "queued"}
