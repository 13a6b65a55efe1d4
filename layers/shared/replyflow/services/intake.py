"""Webhook intake: handshake, signature, parse, route, enqueue (docs/architecture.md#pipeline).

Invariants:
- the signature is an HMAC-SHA256 over the exact bytes received, compared in constant time against
  every configured app secret (either may sign, docs/instagram.md#signatures); no secret configured
  fails closed;
- nothing is parsed, routed or enqueued before the signature holds; the body is then decoded by
  ``replyflow.json_input`` (UTF-8, finite numbers, 64-bit integers, bounded depth), so a ``NaN`` is a
  400 here rather than a queue message no worker can read. ``route_and_enqueue`` is the step after
  the signature, which the sandbox stack's test comments (``services.sandbox_tools``) call too with a
  body the API built: one routing, one set of queues, one dedupe for both;
- routing reads ``cache_keys.account_route_key`` only; on a miss a :class:`RouteLoader` (the database,
  imported lazily by the wiring) answers and the answer is cached, unknown accounts included (a short
  negative entry), so a warm webhook touches no database;
- events go to ``events-{priority}`` of the tenant's plan, in SQS batches (the publisher splits them
  at 10 messages / 256 KB); a publish failure propagates, so Meta gets a 5xx and retries the body
  (the processor's dedupe ledger absorbs the repeat).

Imports stay lean: no SQLAlchemy, no API modules.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from replyflow.domain.messages import EventMessage, events_queue, queue_priority
from replyflow.domain.webhook_events import WebhookEvent, drop_reason, parse_body
from replyflow.errors import SignatureError
from replyflow.json_input import decode_json
from replyflow.ports import Cache, QueuePublisher
from replyflow.services import cache_keys

SIGNATURE_PREFIX = "sha256="
# Unknown accounts are remembered briefly so a burst for one costs one database read.
NEGATIVE_ROUTE_TTL_SECONDS = 30


@dataclass(frozen=True)
class AccountRoute:
    tenant_id: str
    account_id: str
    priority: str
    status: str

    def to_json(self) -> dict[str, str]:
        return {
            "tenant_id": self.tenant_id,
            "account_id": self.account_id,
            "priority": self.priority,
            "status": self.status,
        }


# entry.id -> AccountRoute, or None for an account we do not serve (the database, on a cache miss).
RouteLoader = Callable[[str], "AccountRoute | None"]


@dataclass
class IntakeResult:
    enqueued: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # dropped / unroutable, by reason


def verify_signature(body: bytes, header: str | None, secrets: Sequence[bytes]) -> int:
    """Index of the secret that signed ``body``; raises :class:`SignatureError` otherwise."""
    if not secrets:
        raise SignatureError("no app secret configured")
    if not header or not header.startswith(SIGNATURE_PREFIX):
        raise SignatureError("missing X-Hub-Signature-256")
    received = header[len(SIGNATURE_PREFIX) :].strip().lower()
    matched = -1
    # Every secret is checked (no early exit) so timing says nothing about which one matched.
    for index, secret in enumerate(secrets):
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, received) and matched < 0:
            matched = index
    if matched < 0:
        raise SignatureError("signature mismatch")
    return matched


def sign(body: bytes, secret: bytes) -> str:
    """The header value Meta would send (tests, the CLI's ``simulate``)."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_handshake(params: dict[str, str], verify_token: str) -> str | None:
    """The challenge to echo when the subscription handshake is valid, else None."""
    if params.get("hub.mode") != "subscribe" or not verify_token:
        return None
    if not hmac.compare_digest(params.get("hub.verify_token", "").encode(), verify_token.encode()):
        return None
    return params.get("hub.challenge", "")


class RouteResolver:
    """entry.id -> AccountRoute through the shared cache, falling back to ``loader``."""

    def __init__(self, cache: Cache, loader: RouteLoader) -> None:
        self._cache = cache
        self._loader = loader

    def resolve(self, ig_user_id: str) -> AccountRoute | None:
        key = cache_keys.account_route_key(ig_user_id)
        cached = self._cache.get_json(key)
        if isinstance(cached, dict):
            if cached.get("unknown"):
                return None
            try:
                return AccountRoute(
                    tenant_id=cached["tenant_id"],
                    account_id=cached["account_id"],
                    priority=cached.get("priority", "default"),
                    status=cached.get("status", "active"),
                )
            except KeyError:
                pass  # an entry of another shape: reload it
        route = self._loader(ig_user_id)
        if route is None:
            self._cache.set_json(key, {"unknown": True}, NEGATIVE_ROUTE_TTL_SECONDS)
        else:
            self._cache.set_json(key, route.to_json(), cache_keys.ROUTE_TTL_SECONDS)
        return route


def intake(
    body: bytes,
    signature: str | None,
    *,
    secrets: Sequence[bytes],
    resolver: RouteResolver,
    publisher: QueuePublisher,
    on_signature: Callable[[int], None] | None = None,
) -> IntakeResult:
    """Verify, parse, route and enqueue one webhook POST body."""
    matched = verify_signature(body, signature, secrets)
    if on_signature is not None:
        on_signature(matched)
    decoded: Any = decode_json(body)  # MalformedJsonError (400): Meta's deliveries are plain JSON
    return route_and_enqueue(decoded, resolver=resolver, publisher=publisher)


def route_and_enqueue(decoded: Any, *, resolver: RouteResolver, publisher: QueuePublisher) -> IntakeResult:
    """Parse, route and enqueue a webhook body already trusted: one whose signature held (``intake``)
    or one the API made itself (``services.sandbox_tools``, on a sandbox stack only)."""
    parsed = parse_body(decoded)
    result = IntakeResult(counts=Counter(parsed.skipped))
    by_queue: dict[str, list[str]] = {}
    routes: dict[str, AccountRoute | None] = {}
    for event in parsed.events:
        reason = drop_reason(event)
        if reason is not None:
            result.counts[reason] += 1
            continue
        if event.ig_account_id not in routes:
            routes[event.ig_account_id] = resolver.resolve(event.ig_account_id)
        route = routes[event.ig_account_id]
        if route is None:
            result.counts["unknown_account"] += 1
            continue
        if route.status == "disabled":
            result.counts["account_disabled"] += 1
            continue
        message = _message(route, event)
        by_queue.setdefault(events_queue(route.priority), []).append(message)
    for queue, bodies in by_queue.items():
        publisher.publish(queue, bodies)
        result.enqueued += len(bodies)
    return result


def _message(route: AccountRoute, event: WebhookEvent) -> str:
    return EventMessage(
        tenant_id=route.tenant_id,
        account_id=route.account_id,
        priority=queue_priority(route.priority),
        event=event,
    ).to_json()
