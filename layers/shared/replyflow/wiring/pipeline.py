"""Wiring for the pipeline's functions (webhook, processor, sender): real adapters, built lazily once
per process. Nothing heavy at import: the webhook imports this module, so SQLAlchemy, httpx and the
services are imported inside the builders.

In-process use (the local stack, tests, the bench)::

    from replyflow.wiring import pipeline
    pipeline.processor().process(EventMessage.from_json(body))
    pipeline.sender().send(SendJob.from_json(body))

``core.override(...)`` then ``pipeline.reset()`` swaps settings, the queue publisher or the Graph
client (``core.override(graph_client=...)``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from replyflow.services.intake import AccountRoute, RouteResolver
from replyflow.wiring import core

if TYPE_CHECKING:
    from replyflow.adapters.graph_client import GraphClient
    from replyflow.adapters.rate_limiter import RedisRateLimiter
    from replyflow.ports import GraphSender, QueueVisibility
    from replyflow.services.process_event import EventProcessor
    from replyflow.services.send_reply import SendService
    from replyflow.services.sqs_batch import RetryBackoff


def reset() -> None:
    for fn in (route_resolver, processor, sender, graph_client, rate_limiter, retry_backoff):
        fn.cache_clear()


def load_route(ig_user_id: str) -> AccountRoute | None:
    """The cold path of webhook routing: account + tenant plan priority from the reader database."""
    from replyflow.db.engine import session_scope
    from replyflow.db.repositories import accounts

    with session_scope(core.reader_sessions()) as session:
        row = accounts.route_row(session, ig_user_id)
    if row is None:
        return None
    tenant_id, account_id, status, priority = row
    return AccountRoute(
        tenant_id=tenant_id, account_id=account_id, priority=priority or "default", status=status
    )


@lru_cache(maxsize=1)
def route_resolver() -> RouteResolver:
    return RouteResolver(core.cache(), load_route)


@lru_cache(maxsize=1)
def rate_limiter() -> RedisRateLimiter:
    from replyflow.adapters.rate_limiter import RedisRateLimiter

    s = core.settings()
    return RedisRateLimiter(
        core.redis_client(), ceiling_per_hour=s.private_reply_hourly_ceiling, per_second=s.per_second_send_cap
    )


@lru_cache(maxsize=1)
def graph_client() -> GraphSender | GraphClient:
    override = core.component("graph_client")
    if override is not None:
        return override  # type: ignore[return-value]
    from replyflow.adapters.graph_client import GraphClient

    s = core.settings()
    return GraphClient(s.graph_base, timeout_seconds=s.graph_timeout_seconds)


def queue_visibility() -> QueueVisibility:
    """The local broker's (``core.override(queue_visibility=...)``), else SQS with a lazy client."""
    override = core.component("queue_visibility")
    if override is not None:
        return override  # type: ignore[return-value]
    from replyflow.adapters.queues import SqsVisibility

    return SqsVisibility(lambda: core.aws_client("sqs"))


@lru_cache(maxsize=1)
def retry_backoff() -> RetryBackoff:
    """How the processor and sender workers delay a failed record's next delivery."""
    from replyflow.services.sqs_batch import RetryBackoff

    s = core.settings()
    return RetryBackoff(
        queue_visibility(), base_seconds=s.retry_backoff_base_seconds, max_seconds=s.retry_backoff_max_seconds
    )


@lru_cache(maxsize=1)
def processor() -> EventProcessor:
    from replyflow.adapters.rate_limiter import RedisCooldowns
    from replyflow.services.process_event import EventProcessor

    return EventProcessor(
        sessions=core.writer_sessions(),
        cache=core.cache(),
        cooldowns=RedisCooldowns(core.redis_client()),
        publisher=core.queue_publisher(),
    )


@lru_cache(maxsize=1)
def sender() -> SendService:
    from replyflow.services.send_reply import SendService

    return SendService(
        sessions=core.writer_sessions(),
        graph=graph_client(),
        limiter=rate_limiter(),
        cipher=core.cipher(),
        publisher=core.queue_publisher(),
        cache=core.cache(),
    )
