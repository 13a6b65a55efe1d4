"""Test helpers for the pipeline (webhook -> processor -> sender): ``LocalQueues``, the template's
queues on the local broker with a fake clock, which drives the real Lambda handlers with SQS events
(redelivery, ``maxReceiveCount``, DLQs and delays as template.yaml sets them); ``MemoryQueues``, a bare
publisher for tests that call one handler directly; tenant seeding, signed webhook proxy events, and a
scripted fake Graph client. No sockets here; integration tests add the real MariaDB, Redis and the
sandbox."""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from local.broker import Broker, Consumer
from local.lambda_context import LambdaContext
from local.template import QueueSpec, SamTemplate, load_template
from replyflow.adapters.crypto import TokenCipher
from replyflow.adapters.graph_client import GraphError, GraphResult
from replyflow.adapters.queues import BrokerPublisher, BrokerVisibility
from replyflow.db.models import Automation, InstagramAccount, Template, Tenant
from replyflow.db.repositories.plans import seed_plans
from replyflow.ids import new_id
from replyflow.ports import SlotRequest
from replyflow.services.intake import sign

KEY = "bG9jYWwtb25seS10b2tlbi1rZXktMzItYnl0ZXMhIT0="
SECRET = b"test-app-secret"


def lambda_context(function_name: str = "TestFunction", timeout_seconds: float = 30.0) -> LambdaContext:
    """What the Lambda runtime passes a handler (every handler logs it through Powertools)."""
    return LambdaContext(function_name, 512, timeout_seconds)


class MemoryQueues:
    """A bare QueuePublisher for tests that call one handler directly: ``published`` records each
    body with its delay, ``take`` hands them out at once (delays are not waited; a test that needs
    redelivery, delays or DLQs drives the handlers through ``LocalQueues``)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self.published: list[tuple[str, str, int]] = []

    def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None:
        with self._lock:
            ready = time.monotonic()
            for body in bodies:
                heapq.heappush(self._heap, (ready, next(self._seq), queue, body))
                self.published.append((queue, body, delay_seconds))

    def take(self, prefix: str, limit: int = 10) -> list[tuple[str, str]]:
        """Up to ``limit`` ready messages of queues starting with ``prefix``."""
        now = time.monotonic()
        taken: list[tuple[str, str]] = []
        keep: list[tuple[float, int, str, str]] = []
        with self._lock:
            while self._heap and len(taken) < limit:
                item = heapq.heappop(self._heap)
                if item[0] <= now and item[2].startswith(prefix):
                    taken.append((item[2], item[3]))
                else:
                    keep.append(item)
            for item in keep:
                heapq.heappush(self._heap, item)
        return taken

    def pending(self, prefix: str = "") -> int:
        with self._lock:
            return sum(1 for item in self._heap if item[2].startswith(prefix))


class FakeMonotonic:
    """A monotonic clock that moves only when told (the broker's clock in pipeline tests)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@dataclass
class DrainStats:
    batches: int = 0
    delivered: int = 0
    failed: int = 0
    waited_seconds: float = 0.0  # fake time the drain advanced (delays, backoffs, visibility timeouts)


def _invoker(
    handler: Callable[[dict[str, Any], Any], Any], context: LambdaContext
) -> Callable[[dict[str, Any]], Any]:
    def invoke(event: dict[str, Any]) -> Any:
        return handler(event, context)

    return invoke


class LocalQueues:
    """The template's queues and SQS event sources on the local broker, with a fake clock.

    It is the pipeline's ``publisher`` and (``visibility``) its ``QueueVisibility``, so the queues'
    visibility timeouts, ``maxReceiveCount``, DLQs, batch sizes and ``ReportBatchItemFailures`` are
    template.yaml's, and a deferral's ``DelaySeconds`` or a failed record's backoff are waited out by
    advancing the clock, not by sleeping. ``bind`` attaches a handler to every function of the
    template whose handler module starts with the given package (``processor``, ``sender``)."""

    def __init__(self, template: SamTemplate | None = None, *, clock: FakeMonotonic | None = None) -> None:
        self.template = template or load_template()
        self.clock = clock or FakeMonotonic()
        start, wall = self.clock.now, time.time()
        self.broker = Broker(
            self.template.queues.values(),
            clock=self.clock,
            wall_clock=lambda: wall + (self.clock.now - start),
        )
        self._publisher = BrokerPublisher(self.broker)
        self.visibility = BrokerVisibility(self.broker)
        self.published: list[tuple[str, str, int]] = []
        self._consumers: list[Consumer] = []

    def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None:
        self.published.extend((queue, body, delay_seconds) for body in bodies)
        self._publisher.publish(queue, bodies, delay_seconds=delay_seconds)

    def bind(self, package: str, handler: Callable[[dict[str, Any], Any], Any]) -> None:
        for spec in self.template.functions.values():
            if not spec.handler.startswith(f"{package}."):
                continue
            invoke = _invoker(handler, lambda_context(spec.logical_id, float(spec.timeout)))
            for event in spec.sqs_events:
                consumer = Consumer.from_event(event, spec.logical_id, invoke, max_workers=1)
                self.broker.add_consumer(consumer)
                self._consumers.append(consumer)

    def queue(self, name: str) -> QueueSpec:
        return self.template.queues[name]

    def pending(self, prefix: str = "") -> int:
        """Messages visible, in flight or delayed in the consumed queues whose name starts ``prefix``."""
        return sum(
            q["visible"] + q["in_flight"] + q["delayed"]
            for name, q in self.broker.stats().items()
            if name.startswith(prefix) and not q["is_dlq"]
        )

    def dead_letters(self, queue: str) -> list[dict[str, Any]]:
        """The messages in ``queue``'s DLQ (``body``, ``receiveCount``, ...)."""
        return self.broker.dlq_messages(queue)

    def dead_lettered(self) -> list[dict[str, Any]]:
        """Every message in any DLQ of the pipeline's queues."""
        return [
            message
            for name, spec in self.template.queues.items()
            if spec.dlq
            for message in self.broker.dlq_messages(name)
        ]

    def poll(self) -> int:
        """One batch for each bound event source that has visible messages now; records delivered."""
        return sum(self.broker.poll_once(consumer).delivered for consumer in self._consumers)

    def drain(self, *, max_wait_seconds: float = 7 * 24 * 3600, max_batches: int = 100_000) -> DrainStats:
        """Deliver until every consumed queue is empty, advancing the clock to the next delayed or
        timed-out message whenever nothing is visible. A message past ``maxReceiveCount`` moves to its
        DLQ on the receive after its last failure, as on SQS."""
        stats = DrainStats()
        begin = self.clock.now
        while stats.batches < max_batches:
            delivered = 0
            for consumer in self._consumers:
                result = self.broker.poll_once(consumer)
                if result.delivered:
                    stats.batches += 1
                    stats.delivered += result.delivered
                    stats.failed += result.failed
                    delivered += result.delivered
            if delivered:
                continue
            due = self.broker.next_due()
            if due is None:
                stats.waited_seconds = self.clock.now - begin
                return stats
            if due - begin > max_wait_seconds:
                raise TimeoutError(f"queues not drained in {max_wait_seconds:g} s of queue time")
            self.clock.advance(due - self.clock.now)
        raise TimeoutError(f"queues not drained in {max_batches} batches ({self.pending()} pending)")


@dataclass
class Seeded:
    tenant_id: str
    account_id: str
    ig_user_id: str
    automation_ids: list[str]


def seed_tenant(
    session: Session,
    cipher: TokenCipher,
    *,
    token: str = "test-token",
    plan: str = "pro",
    ig_user_id: str | None = None,
    automations: Sequence[dict[str, Any]] = (),
    budget: int = 200,
) -> Seeded:
    """A tenant with one account and the given automations. ``automations`` items are Automation
    fields; an action with ``template_text`` gets a template created for it."""
    seed_plans(session)
    tenant = Tenant(name="Test", slug=f"t-{new_id()}", plan_code=plan)
    session.add(tenant)
    session.flush()
    account = InstagramAccount(
        tenant_id=tenant.id,
        ig_user_id=ig_user_id or f"1784{uuid.uuid4().int % 10**13:013d}",
        username="brand",
        access_token_encrypted=b"",
        hourly_send_budget=budget,
    )
    session.add(account)
    session.flush()
    account.access_token_encrypted = cipher.encrypt(token, context=account.id)
    ids = []
    for spec in automations:
        spec = dict(spec)
        actions = {}
        for name, action in dict(spec.pop("actions", {})).items():
            action = dict(action)
            if "template_text" in action:
                template = Template(tenant_id=tenant.id, name=name, text=action.pop("template_text"))
                for extra in ("buttons", "quick_replies"):
                    if extra in action:
                        setattr(template, extra, action.pop(extra))
                session.add(template)
                session.flush()
                action["template_id"] = template.id
            actions[name] = action
        automation = Automation(
            tenant_id=tenant.id,
            account_id=account.id,
            name=spec.pop("name", "auto"),
            trigger=spec.pop("trigger", "comment"),
            match_mode=spec.pop("match_mode", "whole_word"),
            keywords=spec.pop("keywords", ["LINK"]),
            actions=actions,
            **spec,
        )
        session.add(automation)
        session.flush()
        ids.append(automation.id)
    return Seeded(tenant.id, account.id, account.ig_user_id, ids)


def comment_body(ig_user_id: str, comment_id: str, text: str = "LINK", **extra: Any) -> dict[str, Any]:
    entry_time = int(extra.pop("time", time.time()))
    field_name = extra.pop("field", "comments")
    value: dict[str, Any] = {
        "from": {"id": extra.pop("from_id", "7351928465012834"), "username": "maya.creates"},
        "media": {"id": extra.pop("media_id", "18034567890123456"), "media_product_type": "FEED"},
        "id": comment_id,
        "text": text,
        **extra,
    }
    return {
        "object": "instagram",
        "entry": [
            {
                "id": ig_user_id,
                "time": entry_time,
                "changes": [{"field": field_name, "value": value}],
            }
        ],
    }


def webhook_post(
    body: dict[str, Any] | bytes, secret: bytes = SECRET, *, b64: bool = False
) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {
        "httpMethod": "POST",
        "path": "/webhooks/instagram",
        "headers": {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, secret)},
        "body": base64.b64encode(raw).decode() if b64 else raw.decode(),
        "isBase64Encoded": b64,
    }


class ScriptedGraph:
    """A fake Graph client: ``script`` yields a GraphError to raise or None to succeed, per call."""

    def __init__(self, script: Callable[[int, dict[str, Any]], GraphError | None] | None = None) -> None:
        self._script = script or (lambda _n, _p: None)
        self._lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []
        self.delivered: list[dict[str, Any]] = []
        # GET /{comment-id}?fields=timestamp: the answer per comment id (an exception is raised).
        self.comment_times: dict[str, datetime | Exception] = {}
        self.comment_reads: list[str] = []
        # GET /{igsid}?fields=is_user_follow_business: who follows the account.
        self.follows: dict[str, bool] = {}
        self.profile_reads: list[str] = []

    def _call(self, payload: dict[str, Any], result: GraphResult) -> GraphResult:
        with self._lock:
            n = len(self.calls)
            self.calls.append(payload)
        error = self._script(n, payload)
        if error is not None:
            if error.kind == "ambiguous":
                with self._lock:
                    self.delivered.append(payload)
            raise error
        with self._lock:
            self.delivered.append(payload)
        return result

    def send_message(
        self, ig_user_id: str, access_token: str, recipient: dict[str, Any], message: dict[str, Any]
    ) -> GraphResult:
        payload = {
            "ig_user_id": ig_user_id,
            "token": access_token,
            "recipient": recipient,
            "message": message,
        }
        return self._call(payload, GraphResult(f"mid.{uuid.uuid4().hex}", recipient.get("id")))

    def reply_to_comment(self, comment_id: str, access_token: str, text: str) -> GraphResult:
        payload = {"comment_id": comment_id, "token": access_token, "text": text, "public": True}
        return self._call(payload, GraphResult(f"c.{uuid.uuid4().hex}", None))

    def comment_created_at(self, comment_id: str, access_token: str) -> datetime | None:
        with self._lock:
            self.comment_reads.append(comment_id)
        answer = self.comment_times.get(comment_id)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def user_follows(self, igsid: str, access_token: str) -> bool | None:
        """``follows`` says who follows the account (the sandbox's control endpoint, in a dict)."""
        with self._lock:
            self.profile_reads.append(igsid)
        return self.follows.get(igsid)


class DictCache:
    """The Cache port in a dict."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get_json(self, key: str) -> Any | None:
        return self.data.get(key)

    def set_json(self, key: str, value: Any, ttl_seconds: int) -> None:
        self.data[key] = json.loads(json.dumps(value, default=str))

    def delete(self, *keys: str) -> None:
        for key in keys:
            self.data.pop(key, None)


class DictCooldowns:
    def __init__(self) -> None:
        self.held: set[str] = set()
        self.counters: dict[str, int] = {}

    def acquire(self, key: str, seconds: int) -> bool:
        if key in self.held:
            return False
        self.held.add(key)
        return True

    def release(self, key: str) -> None:
        self.held.discard(key)

    def next_index(self, key: str) -> int:
        self.counters[key] = self.counters.get(key, -1) + 1
        return self.counters[key]


class FixedClock:
    def __init__(self, now: Any) -> None:
        self.current = now

    def now(self) -> Any:
        return self.current

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class FakeSlot:
    granted: bool
    token: str = ""
    delay_seconds: float = 0.0


class FakeLimiter:
    """Grants ``budget`` slots then answers with ``delay``; records releases and pauses."""

    def __init__(self, budget: int = 10**9, delay: float = 30.0) -> None:
        self.budget = budget
        self.delay = delay
        self.granted = 0
        self.released: list[str] = []
        self.paused: list[float] = []
        self.paused_all: list[float] = []
        self.window_lost = False  # like a Redis restart: the next acquire rebuilds from ``history``
        self.rebuilt_from: list[int] = []
        self.batches: list[int] = []  # the size of each ``acquire_many`` call

    def acquire(
        self, account_id: str, hourly_budget: int, *, history: Callable[[], Sequence[int]] | None = None
    ) -> FakeSlot:
        if self.window_lost and history is not None:
            self.rebuilt_from = list(history())
            self.granted, self.window_lost = len(self.rebuilt_from), False
        if self.granted >= self.budget:
            return FakeSlot(False, "", self.delay)
        self.granted += 1
        return FakeSlot(True, f"slot{self.granted}")

    def acquire_many(self, requests: Sequence[SlotRequest]) -> list[FakeSlot | Exception]:
        self.batches.append(len(requests))
        out: list[FakeSlot | Exception] = []
        for request in requests:
            try:
                out.append(self.acquire(request.account_id, request.hourly_budget, history=request.history))
            except Exception as error:
                out.append(error)
        return out

    def release(self, account_id: str, token: str) -> None:
        self.released.append(token)

    def pause(self, account_id: str, seconds: float) -> None:
        self.paused.append(seconds)

    def pause_all(self, seconds: float) -> None:
        self.paused_all.append(seconds)
