"""The issue #2 path end to end, in process, against the real MariaDB and Redis and the Instagram
sandbox on a loopback port: webhook -> events queue -> processor -> ledger -> sends queue -> sender ->
Graph (sandbox) -> reply_logs + automation_logs. The queues are template.yaml's on the local broker
with a fake clock (``LocalQueues``): redelivery, ``maxReceiveCount`` and delays are the template's,
waited out in queue time."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy import event as sa_event

from local.sandbox import SandboxServer
from processor import handler as processor
from replyflow.adapters.rate_limiter import RedisRateLimiter, Slot
from replyflow.db.engine import session_scope
from replyflow.db.models import AutomationLog, InstagramAccount, OutboundMessage, ReplyLog
from replyflow.ports import SlotLike, SlotRequest
from replyflow.services.send_reply import SendService, release_parked
from replyflow.services.sqs_batch import RetryBackoff
from replyflow.settings import Settings
from replyflow.wiring.pipeline import PipelineDeps, build_pipeline, send_limiter
from sender import handler as sender
from sender.handler import SenderDeps
from tests.support_pipeline import (
    SECRET,
    LocalQueues,
    Seeded,
    comment_body,
    lambda_context,
    seed_tenant,
    webhook_post,
)
from webhook import handler as webhook

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_url(redis_any_url: str) -> str:
    """Every test here runs on the standalone Redis and on the three-master cluster."""
    return redis_any_url


PRIVATE_REPLY = {
    "private_reply": {"template_text": "Hi {{username}}! Here is your link: https://example.com/p"}
}


@dataclass(frozen=True)
class CompressedSender:
    sender: SendService
    retry_backoff: RetryBackoff


@dataclass
class Stack:
    sandbox: SandboxServer
    queues: LocalQueues
    deps: PipelineDeps
    sender_deps: SenderDeps | None = None

    def webhook(self, event: dict[str, Any]) -> dict[str, Any]:
        return webhook.make_handler(lambda: self.deps)(event, lambda_context())

    def seed(self, **kwargs: object) -> Seeded:
        with session_scope(self.deps.clients.writer_sessions) as session:
            ig = f"1784{uuid.uuid4().int % 10**13:013d}"
            token = self.sandbox.issue_token(ig, "brand")
            return seed_tenant(session, self.deps.clients.cipher, token=token, ig_user_id=ig, **kwargs)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        self.queues.bind("processor", processor.make_handler(lambda: self.deps))
        self.queues.bind("sender", sender.make_handler(lambda: self.sender_deps or self.deps))

    def drain(self) -> None:
        self.queues.drain()

    def sandbox_messages(self, ig_user_id: str) -> list[dict[str, object]]:
        state = self.sandbox.app.state
        with state.lock:
            return [r.to_json() for r in state.sent if r.account_id == ig_user_id]


@pytest.fixture
def stack(mysql_url: str, redis_url: str) -> Iterator[Stack]:
    sandbox = SandboxServer(port=0, app_id="replyflow-test", app_secret="sandbox-secret", seed=7)
    sandbox.start()
    queues = LocalQueues()
    settings = Settings(
        environment="test",
        database_url=mysql_url,
        redis_url=redis_url,
        graph_api_base_url=sandbox.url,
        instagram_app_secret=SECRET.decode(),
        meta_app_secret="the-other-secret",
        graph_timeout_seconds=5,
    )
    try:
        yield Stack(sandbox, queues, build_pipeline(settings, publisher=queues, visibility=queues.visibility))
    finally:
        sandbox.stop()


def _count(stack: Stack, model: type, **where: object) -> int:
    with session_scope(stack.deps.clients.writer_sessions) as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(session.scalar(query) or 0)


def test_a_comment_keyword_becomes_one_private_reply_with_logs(stack: Stack) -> None:
    seeded = stack.seed(automations=[{"keywords": ["LINK"], "actions": PRIVATE_REPLY}])
    comment_id = f"179{uuid.uuid4().int % 10**14:014d}"

    response = stack.webhook(webhook_post(comment_body(seeded.ig_user_id, comment_id, "LINK")))
    assert response["statusCode"] == 200
    stack.drain()

    sent = stack.sandbox_messages(seeded.ig_user_id)
    assert len(sent) == 1
    assert sent[0]["recipient"] == {"comment_id": comment_id}
    assert "maya.creates" in json.dumps(sent[0]["message"])
    assert _count(stack, ReplyLog, tenant_id=seeded.tenant_id, status="sent") == 1
    assert _count(stack, AutomationLog, tenant_id=seeded.tenant_id, action="sent") == 1
    assert _count(stack, AutomationLog, tenant_id=seeded.tenant_id, action="queued") == 1
    assert _count(stack, OutboundMessage, tenant_id=seeded.tenant_id, status="sent") == 1


def test_comments_of_three_tenants_in_one_batch_are_each_sent_once_in_their_tenant(stack: Stack) -> None:
    tenants = [stack.seed(automations=[{"keywords": ["LINK"], "actions": PRIVATE_REPLY}]) for _ in range(3)]
    for n in range(6):
        seeded = tenants[n % 3]
        comment_id = f"179{uuid.uuid4().int % 10**14:014d}"
        body = comment_body(seeded.ig_user_id, comment_id, "LINK", from_id=f"73519284650{n:05d}")
        assert stack.webhook(webhook_post(body))["statusCode"] == 200
    leases: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.startswith("UPDATE outbound_messages"):
            leases.append(statement)

    sa_event.listen(Engine, "before_cursor_execute", listener)  # every engine: the sender's own too
    try:
        stack.drain()
    finally:
        sa_event.remove(Engine, "before_cursor_execute", listener)
    assert any(lease.count("outbound_messages.tenant_id = ") == 3 for lease in leases)  # one lease, 3 tenants
    for seeded in tenants:
        assert len(stack.sandbox_messages(seeded.ig_user_id)) == 2
        assert _count(stack, OutboundMessage, tenant_id=seeded.tenant_id, status="sent") == 2
        assert _count(stack, ReplyLog, tenant_id=seeded.tenant_id, status="sent") == 2
        assert _count(stack, AutomationLog, tenant_id=seeded.tenant_id, action="sent") == 2


def test_a_bad_signature_is_401_and_nothing_is_enqueued(stack: Stack) -> None:
    seeded = stack.seed(automations=[{"actions": PRIVATE_REPLY}])
    event = webhook_post(comment_body(seeded.ig_user_id, "17900000000000001"), secret=b"wrong")
    response = stack.webhook(event)
    assert response["statusCode"] == 401
    assert json.loads(response["body"])["error"]["code"] == "invalid_signature"
    assert stack.queues.pending() == 0


def test_the_same_body_three_times_at_once_sends_one_dm(stack: Stack) -> None:
    seeded = stack.seed(automations=[{"actions": PRIVATE_REPLY}])
    comment_id = f"179{uuid.uuid4().int % 10**14:014d}"
    event = webhook_post(comment_body(seeded.ig_user_id, comment_id))
    barrier = threading.Barrier(3)
    statuses: list[int] = []

    def deliver() -> None:
        barrier.wait()
        statuses.append(stack.webhook(event)["statusCode"])

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200, 200]
    assert stack.queues.pending("events-") == 3

    # The three copies are processed concurrently too (one SQS batch, thread pool).
    stack.drain()
    assert len(stack.sandbox_messages(seeded.ig_user_id)) == 1
    assert _count(stack, OutboundMessage, tenant_id=seeded.tenant_id) == 1
    assert _count(stack, ReplyLog, tenant_id=seeded.tenant_id, status="sent") == 1


# -- faults: throttle storm, error rate, token expiry, ambiguous writes ---------------------------


class CompressedLimiter:
    """The real Redis limiter with throttle pauses shortened, so a storm that would pause for minutes
    plays out in about a second: Redis keeps real time, while the queues' delays are waited out on
    the broker's fake clock (time compression for the test only)."""

    def __init__(self, inner: RedisRateLimiter, scale: float) -> None:
        self._inner, self._scale = inner, scale

    def acquire(
        self, account_id: str, hourly_budget: int, *, history: Callable[[], Sequence[int]] | None = None
    ) -> Slot:
        return self._inner.acquire(account_id, hourly_budget, history=history)

    def acquire_many(self, requests: Sequence[SlotRequest]) -> list[SlotLike | Exception]:
        return list(self._inner.acquire_many(requests))

    def release(self, account_id: str, token: str) -> None:
        self._inner.release(account_id, token)

    def pause(self, account_id: str, seconds: float) -> None:
        self._inner.pause(account_id, seconds * self._scale)

    def pause_all(self, seconds: float) -> None:
        self._inner.pause_all(seconds * self._scale)


def _compress(stack: Stack, scale: float = 0.01) -> None:
    deps = stack.deps
    service = SendService(
        sessions=deps.clients.writer_sessions,
        graph=deps.graph,
        limiter=CompressedLimiter(send_limiter(deps.clients), scale),
        cipher=deps.clients.cipher,
        publisher=stack.queues,
        cache=deps.clients.cache,
        backoff_base_seconds=1.0,
    )
    stack.sender_deps = CompressedSender(service, deps.retry_backoff)


def _faults(stack: Stack, **faults: object) -> None:
    with stack.sandbox.app.state.lock:
        stack.sandbox.app.state.faults.update(faults, stack.sandbox.app.state.token_serial)


def _comments(stack: Stack, seeded: Seeded, count: int) -> list[str]:
    ids = [f"179{uuid.uuid4().int % 10**14:014d}" for _ in range(count)]
    for comment_id in ids:
        response = stack.webhook(webhook_post(comment_body(seeded.ig_user_id, comment_id)))
        assert response["statusCode"] == 200
    return ids


def _statuses(stack: Stack, seeded: Seeded) -> dict[str, int]:
    with session_scope(stack.deps.clients.writer_sessions) as session:
        rows = session.execute(
            select(OutboundMessage.status, func.count())
            .where(OutboundMessage.tenant_id == seeded.tenant_id)
            .group_by(OutboundMessage.status)
        ).all()
    return {status: count for status, count in rows}


def test_a_throttle_storm_and_a_5_percent_error_rate_still_send_every_message_exactly_once(
    stack: Stack,
) -> None:
    _compress(stack)
    seeded = stack.seed(automations=[{"actions": PRIVATE_REPLY}])
    _faults(stack, error_rate=0.05, throttle_next=8)
    ids = _comments(stack, seeded, 40)
    stack.drain()

    sent = [m["recipient"]["comment_id"] for m in stack.sandbox_messages(seeded.ig_user_id)]  # type: ignore[index]
    assert sorted(sent) == sorted(ids)  # every comment answered, none twice
    assert _statuses(stack, seeded) == {"sent": 40}
    state = stack.sandbox.app.state
    with state.lock:
        codes = [r.error["code"] for r in state.rejected if r.account_id == seeded.ig_user_id and r.error]
    assert codes.count(80002) == 8  # the storm happened...
    assert _count(stack, ReplyLog, tenant_id=seeded.tenant_id, status="deferred") >= 8  # ...and was deferred


def test_a_token_error_mid_stream_parks_messages_and_reconnecting_releases_them(
    stack: Stack,
) -> None:
    _compress(stack)
    seeded = stack.seed(automations=[{"actions": PRIVATE_REPLY}])
    first = _comments(stack, seeded, 4)
    stack.drain()
    _faults(stack, expire_tokens=True)
    second = _comments(stack, seeded, 6)
    stack.drain()

    assert _statuses(stack, seeded) == {"sent": 4, "parked": 6}
    with session_scope(stack.deps.clients.writer_sessions) as session:
        account = session.get(InstagramAccount, seeded.account_id)
        assert account is not None
        assert account.status == "needs_reauth"
        # Re-connecting: a fresh token, the account active again, then the parked messages released
        # (the API's reconnect endpoint does exactly this, calling release_parked).
        account.access_token_encrypted = stack.deps.clients.cipher.encrypt(
            stack.sandbox.issue_token(seeded.ig_user_id, "brand"), context=account.id
        )
        account.status = "active"
        assert release_parked(session, seeded.tenant_id, seeded.account_id, stack.queues) == 6
    stack.drain()

    sent = [m["recipient"]["comment_id"] for m in stack.sandbox_messages(seeded.ig_user_id)]  # type: ignore[index]
    assert sorted(sent) == sorted(first + second)
    assert _statuses(stack, seeded) == {"sent": 10}


def test_an_ambiguous_timeout_is_settled_by_the_ledger_not_resent(stack: Stack) -> None:
    seeded = stack.seed(automations=[{"actions": PRIVATE_REPLY}])
    _faults(stack, timeout_rate=1.0)
    (comment_id,) = _comments(stack, seeded, 1)
    stack.drain()
    assert _statuses(stack, seeded) == {"unknown": 1}
    messages = stack.sandbox_messages(seeded.ig_user_id)
    assert [m["recipient"] for m in messages] == [{"comment_id": comment_id}]  # went out once, never again
