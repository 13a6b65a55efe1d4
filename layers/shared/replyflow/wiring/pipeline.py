"""The composition root of the pipeline's functions (webhook, processor, sender): ``PipelineDeps``.

``build_pipeline(settings)`` gives the real adapters; the local stack, tests and benches pass theirs
as arguments (the broker as ``publisher`` and ``visibility``, a scripted ``graph``, a fake
``limiter`` or ``clock``). Nothing heavy at import and nothing built before it is read: the webhook
reads ``app_secrets``, ``route_resolver``, ``publisher`` and ``billing_api`` only, so it never imports
SQLAlchemy (but on a route-cache miss), httpx or the services. In Lambda the webhook's own root is
``wiring.webhook.WebhookDeps`` (no pydantic), which builds this one for a route-cache miss or a Stripe
event only (docs/architecture.md#cold-starts). ::

    deps = build_pipeline(settings, publisher=queues, graph=ScriptedGraph())
    deps.processor.process(EventMessage.from_json(body))
    deps.sender.send(SendJob.from_json(body))
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from replyflow.clock import SystemClock
from replyflow.wiring.core import Clients, once

if TYPE_CHECKING:
    from replyflow.adapters.graph_client import GraphResult
    from replyflow.adapters.rate_limiter import RedisRateLimiter
    from replyflow.adapters.secrets import AppSecrets
    from replyflow.ports import (
        BillingGateway,
        Cache,  # noqa: F401 - named in a base's subscript (a string: not imported at run time)
        Clock,
        GraphSender,
        QueuePublisher,
        QueueVisibility,
        SendLimiter,
        SlotLike,
        SlotRequest,
        TokenDecrypter,  # noqa: F401 - as Cache
    )
    from replyflow.services.flow_runs import FlowRunner
    from replyflow.services.intake import AccountRoute, RouteResolver
    from replyflow.services.process_event import EventProcessor
    from replyflow.services.send_reply import SendService
    from replyflow.services.sqs_batch import RetryBackoff
    from replyflow.settings import Settings
    from replyflow.wiring.sender import SenderSettings

RouteLoader = Callable[[str], "AccountRoute | None"]
_Adapter = TypeVar("_Adapter")


@dataclass(frozen=True, eq=False)
class PipelineDeps:
    """What the webhook, processor and sender need; the services are built on first read."""

    settings: Settings
    clients: Clients
    publisher: QueuePublisher
    visibility: QueueVisibility
    graph: GraphSender
    limiter: SendLimiter
    clock: Clock
    route_loader: RouteLoader
    billing_api: BillingGateway
    """Stripe (or its local fake): webhook verification and subscription reads (``wiring.billing``)."""

    @property
    def app_secrets(self) -> AppSecrets:
        return self.clients.app_secrets

    @property
    def billing_grace(self) -> timedelta:
        return timedelta(seconds=self.settings.billing_grace_seconds)

    @once
    def route_resolver(self) -> RouteResolver:
        from replyflow.services.intake import RouteResolver

        return RouteResolver(self.clients.cache, self.route_loader)

    @once
    def processor(self) -> EventProcessor:
        from replyflow.adapters.rate_limiter import RedisCooldowns
        from replyflow.services.process_event import EventProcessor

        return EventProcessor(
            sessions=self.clients.writer_sessions,
            cache=self.clients.cache,
            cooldowns=RedisCooldowns(self.clients.redis),
            publisher=self.publisher,
            clock=self.clock,
            comments=self.graph,
            cipher=self.clients.cipher,
            live_window=timedelta(seconds=self.settings.live_private_reply_window_seconds),
            edge_margin=timedelta(seconds=self.settings.private_reply_edge_margin_seconds),
            flows=self.flow_runner,
            transaction_group=self._transaction_group(),
        )

    def _transaction_group(self) -> Callable[[str], str] | None:
        """With tenant shards, a batch's events (or settled sends) share a transaction per shard
        (None: one database)."""
        router = self.clients.shard_router
        return None if router is None else router.shard_of

    @once
    def flow_runner(self) -> FlowRunner:
        from replyflow.services.flow_runs import FlowRunner

        return FlowRunner(follow_status=self.graph, cipher=self.clients.cipher)

    @once
    def sender(self) -> SendService:
        from replyflow.services.send_reply import SEND_CONCURRENCY, SendService

        return SendService(
            # A connection per concurrent send: a smaller pool queues the batch's records behind each
            # other between their Graph calls (docs/scaling.md#the-sender).
            sessions=self.clients.writer_sessions_for(SEND_CONCURRENCY),
            graph=self.graph,
            limiter=self.limiter,
            # The cipher and the cache are read by rarer outcomes only (a send, a parked account):
            # a job that ends before its Graph call never imports cryptography's AEAD or redis-py.
            cipher=DecrypterOnUse(lambda: self.clients.cipher),
            publisher=self.publisher,
            cache=CacheOnUse(lambda: self.clients.cache),
            clock=self.clock,
            transaction_group=self._transaction_group(),
        )

    @once
    def retry_backoff(self) -> RetryBackoff:
        """How the processor and sender workers delay a failed record's next delivery."""
        from replyflow.services.sqs_batch import RetryBackoff

        s = self.settings
        return RetryBackoff(
            self.visibility,
            base_seconds=s.retry_backoff_base_seconds,
            max_seconds=s.retry_backoff_max_seconds,
        )


def build_pipeline(
    settings: Settings,
    *,
    clients: Clients | None = None,
    publisher: QueuePublisher | None = None,
    visibility: QueueVisibility | None = None,
    graph: GraphSender | None = None,
    limiter: SendLimiter | None = None,
    clock: Clock | None = None,
    route_loader: RouteLoader | None = None,
    billing_api: BillingGateway | None = None,
) -> PipelineDeps:
    """The pipeline's dependencies; every argument left out is the real adapter for ``settings``."""
    from replyflow.wiring.billing import StripeOnUse

    shared = clients or Clients(settings)
    return PipelineDeps(
        settings=settings,
        clients=shared,
        publisher=publisher or shared.sqs_publisher,
        visibility=visibility or _sqs_visibility(shared),
        graph=graph or GraphOnUse(settings),
        limiter=limiter or LimiterOnUse(lambda: send_limiter(shared)),
        clock=clock or SystemClock(),
        route_loader=route_loader or (lambda ig_user_id: load_route(shared, ig_user_id)),
        billing_api=billing_api or StripeOnUse(settings, shared),
    )


@cache
def process_deps() -> PipelineDeps:
    """This process's pipeline root for the webhook, processor and sender handlers (a Lambda instance
    runs one function): built from the settings at the first invocation, not at import."""
    from replyflow.settings import get_settings

    return build_pipeline(get_settings())


def send_limiter(clients: Clients) -> RedisRateLimiter:
    """The one Redis limiter of sends (slots and Graph pauses), shared with reconciliation."""
    from replyflow.adapters.rate_limiter import RedisRateLimiter

    s = clients.settings
    return RedisRateLimiter(
        clients.redis, ceiling_per_hour=s.private_reply_hourly_ceiling, per_second=s.per_second_send_cap
    )


def _sqs_visibility(clients: Clients) -> QueueVisibility:
    from replyflow.adapters.queues import SqsVisibility

    return SqsVisibility(lambda: clients.sqs)


class _OnUse(Generic[_Adapter]):
    """An adapter built by ``build`` at its first call, once (under a lock: a batch's threads share
    it). The sender's root hands these out for what only some outcomes touch, so a new instance
    whose first jobs end early (a redelivered job, a missing row) never imports what they skip:
    redis-py for the limiter and the cache, cryptography's AEAD for the cipher
    (docs/architecture.md#cold-starts)."""

    def __init__(self, build: Callable[[], _Adapter]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._adapter: _Adapter | None = None

    def _real(self) -> _Adapter:
        with self._lock:
            if self._adapter is None:
                self._adapter = self._build()
            return self._adapter


class LimiterOnUse(_OnUse["SendLimiter"]):
    """The send limiter (``send_limiter``: Redis) built at the first slot or pause."""

    def acquire(
        self, account_id: str, hourly_budget: int, *, history: Callable[[], Sequence[int]] | None = None
    ) -> SlotLike:
        return self._real().acquire(account_id, hourly_budget, history=history)

    def acquire_many(self, requests: Sequence[SlotRequest]) -> Sequence[SlotLike | Exception]:
        return self._real().acquire_many(requests)

    def release(self, account_id: str, token: str) -> None:
        self._real().release(account_id, token)

    def pause(self, account_id: str, seconds: float) -> None:
        self._real().pause(account_id, seconds)

    def pause_all(self, seconds: float) -> None:
        self._real().pause_all(seconds)


class CacheOnUse(_OnUse["Cache"]):
    """The Redis cache built at its first read or write."""

    def get_json(self, key: str) -> Any | None:
        return self._real().get_json(key)

    def set_json(self, key: str, value: Any, ttl_seconds: int) -> None:
        self._real().set_json(key, value, ttl_seconds)

    def delete(self, *keys: str) -> None:
        self._real().delete(*keys)


class DecrypterOnUse(_OnUse["TokenDecrypter"]):
    """The token cipher built at the first decryption (a job that reaches its Graph call)."""

    def decrypt(self, blob: bytes, *, context: str) -> str:
        return self._real().decrypt(blob, context=context)


class GraphOnUse:
    """The httpx Graph client, built at the first send (the webhook never sends, so never imports httpx)."""

    def __init__(self, settings: Settings | SenderSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client: GraphSender | None = None

    def _real(self) -> GraphSender:
        with self._lock:
            if self._client is None:
                from replyflow.adapters.graph_client import GraphClient

                s = self._settings
                self._client = GraphClient(s.graph_base, timeout_seconds=s.graph_timeout_seconds)
            return self._client

    def send_message(
        self, ig_user_id: str, access_token: str, recipient: dict[str, Any], message: dict[str, Any]
    ) -> GraphResult:
        return self._real().send_message(ig_user_id, access_token, recipient, message)

    def reply_to_comment(self, comment_id: str, access_token: str, text: str) -> GraphResult:
        return self._real().reply_to_comment(comment_id, access_token, text)

    def comment_created_at(self, comment_id: str, access_token: str) -> datetime | None:
        return self._real().comment_created_at(comment_id, access_token)

    def user_follows(self, igsid: str, access_token: str) -> bool | None:
        return self._real().user_follows(igsid, access_token)


def load_route(clients: Clients, ig_user_id: str) -> AccountRoute | None:
    """The cold path of webhook routing: account + tenant plan priority from the reader database."""
    from replyflow.db.engine import session_scope
    from replyflow.db.repositories import accounts
    from replyflow.services.intake import AccountRoute

    sessions = clients.reader_sessions
    router = clients.shard_reader_router
    if router is not None:  # the directory names the tenant, whose shard has the account
        tenant_id = router.tenant_of_account(ig_user_id)
        if tenant_id is None:
            return None
        sessions = router.on(router.shard_of(tenant_id, writable=False))
    with session_scope(sessions) as session:
        row = accounts.route_row(session, ig_user_id)
    if row is None:
        return None
    tenant_id, account_id, status, priority = row
    return AccountRoute(
        tenant_id=tenant_id, account_id=account_id, priority=priority or "default", status=status
    )
