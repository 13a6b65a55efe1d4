"""Test helpers for the pipeline (webhook -> processor -> sender): an in-memory queue with SQS-like
delays, a pump that drives the real Lambda handlers with SQS events, tenant seeding, signed webhook
proxy events, and a scripted fake Graph client. No sockets here; integration tests add the real
MariaDB, Redis and the sandbox."""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from local.lambda_context import LambdaContext
from replyflow.adapters.crypto import TokenCipher
from replyflow.adapters.graph_client import GraphError, GraphResult
from replyflow.db.models import Automation, InstagramAccount, Template, Tenant
from replyflow.db.repositories.plans import seed_plans
from replyflow.ids import new_id
from replyflow.services.intake import sign

KEY = "bG9jYWwtb25seS10b2tlbi1rZXktMzItYnl0ZXMhIT0="
SECRET = b"test-app-secret"


def lambda_context(function_name: str = "TestFunction", timeout_seconds: float = 30.0) -> LambdaContext:
    """What the Lambda runtime passes a handler (every handler logs it through Powertools)."""
    return LambdaContext(function_name, 512, timeout_seconds)


class MemoryQueues:
    """QueuePublisher with per-queue delay; ``delay_scale`` compresses delays (0 = deliver now)."""

    def __init__(self, delay_scale: float = 0.0) -> None:
        self.delay_scale = delay_scale
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self.published: list[tuple[str, str, int]] = []

    def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None:
        with self._lock:
            ready = time.monotonic() + delay_seconds * self.delay_scale
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

    def next_ready_in(self) -> float | None:
        with self._lock:
            return max(0.0, self._heap[0][0] - time.monotonic()) if self._heap else None


def sqs_event(bodies: Sequence[str], receive_count: int = 1) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": uuid.uuid4().hex,
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "eventSource": "aws:sqs",
            }
            for body in bodies
        ]
    }


@dataclass
class PumpStats:
    processed: int = 0
    sent_batches: int = 0
    failures: list[str] = field(default_factory=list)


def pump(
    queues: MemoryQueues,
    processor: Callable[[dict[str, Any], Any], dict[str, Any]],
    sender: Callable[[dict[str, Any], Any], dict[str, Any]],
    *,
    timeout: float = 30.0,
    max_receives: int = 5,
) -> PumpStats:
    """Run the workers until every queue is empty. A failed record is redelivered (SQS semantics)
    up to ``max_receives`` times, then dropped into ``stats.failures`` (the DLQ)."""
    stats = PumpStats()
    receives: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        did = False
        for prefix, handler in (("events-", processor), ("sends-", sender)):
            batch = queues.take(prefix)
            if not batch:
                continue
            did = True
            bodies = [body for _, body in batch]
            event = sqs_event(bodies)
            by_id = {
                r["messageId"]: (q, r["body"]) for r, (q, _) in zip(event["Records"], batch, strict=True)
            }
            result = handler(event, lambda_context())
            stats.processed += len(bodies)
            for failure in result.get("batchItemFailures", []):
                queue, body = by_id[failure["itemIdentifier"]]
                receives[body] = receives.get(body, 1) + 1
                if receives[body] > max_receives:
                    stats.failures.append(body)
                else:
                    queues.publish(queue, [body], delay_seconds=1)
        if not did:
            wait = queues.next_ready_in()
            if wait is None:
                return stats
            time.sleep(min(wait, 0.05))
    raise TimeoutError(f"queues not drained in {timeout}s ({queues.pending()} pending)")


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

    def release(self, account_id: str, token: str) -> None:
        self.released.append(token)

    def pause(self, account_id: str, seconds: float) -> None:
        self.paused.append(seconds)

    def pause_all(self, seconds: float) -> None:
        self.paused_all.append(seconds)
