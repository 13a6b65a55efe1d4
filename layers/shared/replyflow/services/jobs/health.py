"""Health: queue depth metrics, and each account's webhook subscription (docs/instagram.md#delivery).

Queue metrics: per queue, depth (visible, in flight, delayed), the age of the oldest message where
the source knows it (the local broker does; in AWS the age is CloudWatch's own
``AWS/SQS ApproximateAgeOfOldestMessage``, which GetQueueAttributes does not return) and the DLQ
depth. The queue name is the only dimension.

Webhook subscriptions: Meta unsubscribes an app silently after prolonged delivery failures, so every
active account is checked with ``GET /me/subscribed_apps``; missing fields are re-subscribed with
``POST``. A final refusal (code 190, a missing permission) marks the account ``needs_reauth``. The
check is idempotent: an account already subscribed is left alone (``webhook_subscribed_at`` is set
when it was unknown).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.crypto import TokenCipher
from replyflow.db.models import InstagramAccount
from replyflow.db.repositories import accounts
from replyflow.ports import Cache, GraphCallError, GraphTokenClient, MetricsSink, QueueStatsSource
from replyflow.services.jobs.accounts import decrypt_token, flag_needs_reauth
from replyflow.services.jobs.common import Deadline, JobResult

# The fields the pipeline consumes: comments and live comments; DMs, story replies and mentions
# arrive as messages; button taps as postbacks.
REQUIRED_FIELDS: tuple[str, ...] = ("comments", "live_comments", "messages", "messaging_postbacks")


def run_queue_metrics(source: QueueStatsSource, sink: MetricsSink, *, deadline: Deadline) -> JobResult:
    result = JobResult("queue-metrics")
    started = time.perf_counter()
    stats = source.stats()
    queues: dict[str, dict[str, float | None]] = {}
    for queue, s in sorted(stats.items()):
        dims = {"queue": queue}
        sink.record("QueueVisibleMessages", s.visible, "Count", dims)
        sink.record("QueueInFlightMessages", s.in_flight, "Count", dims)
        sink.record("QueueDelayedMessages", s.delayed, "Count", dims)
        if s.oldest_age_seconds is not None:
            sink.record("QueueOldestMessageAge", s.oldest_age_seconds, "Seconds", dims)
        if s.dlq is not None:
            sink.record("QueueDlqMessages", s.dlq, "Count", dims)
            result.counts["dlq_messages"] += s.dlq
        result.counts["queues"] += 1
        result.counts["visible_messages"] += s.visible
        queues[queue] = {
            "visible": s.visible,
            "in_flight": s.in_flight,
            "delayed": s.delayed,
            "oldest_age_seconds": s.oldest_age_seconds,
            "dlq": s.dlq,
        }
    result.details["queues"] = queues
    result.duration_seconds = time.perf_counter() - started
    return result


def run_webhook_subscriptions(
    sessions: sessionmaker[Session],
    graph: GraphTokenClient,
    cipher: TokenCipher,
    cache: Cache,
    *,
    app_id: str | None,
    now: datetime,
    deadline: Deadline,
    required_fields: Sequence[str] = REQUIRED_FIELDS,
    tenant_ids: list[str] | None = None,
) -> JobResult:
    result = JobResult("webhook-subscriptions")
    started = time.perf_counter()
    with sessions() as session:
        account_ids = accounts.active_ids(session, tenant_ids)
    flagged: list[dict[str, str]] = []
    for account_id in account_ids:
        if deadline.expired():
            result.stopped_early = True
            break
        with sessions() as session:
            account = session.get(InstagramAccount, account_id)
            if account is None or account.status != "active":
                continue
            result.counts["accounts"] += 1
            token = decrypt_token(cipher, account)
            if token is None:
                flag_needs_reauth(session, cache, account, "stored token cannot be decrypted")
                flagged.append({"tenant_id": account.tenant_id, "account_id": account.id})
                result.counts["needs_reauth"] += 1
                continue
            try:
                fields = graph.subscribed_fields(token, app_id)
                if set(required_fields) <= fields:
                    result.counts["subscribed"] += 1
                    if account.webhook_subscribed_at is None:
                        account.webhook_subscribed_at = now
                        session.commit()
                    continue
                graph.subscribe(token, sorted(fields | set(required_fields)))
            except GraphCallError as error:
                if error.transient or not error.needs_login:
                    result.counts["failed_retry_next_run"] += 1
                    continue
                flag_needs_reauth(session, cache, account, f"webhook subscription refused: {error.reason()}")
                flagged.append({"tenant_id": account.tenant_id, "account_id": account.id})
                result.counts["needs_reauth"] += 1
                continue
            account.webhook_subscribed_at = now
            session.commit()
            result.counts["resubscribed"] += 1
    result.details["needs_reauth"] = flagged
    result.duration_seconds = time.perf_counter() - started
    return result
