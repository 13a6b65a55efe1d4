"""The ledger sweeper: ``outbound_messages`` rows whose job is gone are settled or sent on their way.

A row normally moves because a send job arrives for it. When the job is lost (a worker killed
mid-call, a publish that failed after the commit, a broker restart) nothing looks at the row again
unless the same event happens to be delivered twice. Every few minutes this job finds such rows across
all tenants (each row names its tenant; every change is keyed by tenant and id):

- ``sending`` past the send lease (``SEND_LEASE_SECONDS``, the sender's own rule): the worker died
  during the Graph call, which may have gone out, so the row becomes ``unknown`` with the reason
  ``worker_lost`` and its log rows, and is never sent again;
- ``queued`` older than the sends queues' visibility timeout plus a lease (the job was published at
  once; even a receive that died was redelivered by then and would have moved the row), and
  ``deferred`` older than that plus ``MAX_SQS_DELAY_SECONDS`` (the longest delay a job is published
  with): the send job is published again;
- ``parked`` rows of an account that is active again: released (the backstop of the race-free
  release in ``services.send_reply``).

It is idempotent: every change is a conditional UPDATE on the row's status (and, for a republish, on
the ``updated_at`` it read, which it moves forward), so two runs, or a run and a late sender, never
act twice on one version of a row; a duplicate send job is harmless anyway (the sender owns a row
through ``start_send``). Each run handles at most ``limit`` rows of each kind in chunks and stops
before its deadline; what is left waits for the next run. The counts become the job's metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from replyflow.db.engine import session_scope
from replyflow.db.repositories import ledger
from replyflow.domain.messages import SendJob, sends_queue
from replyflow.observability import logger
from replyflow.ports import QueuePublisher
from replyflow.services.jobs.common import Deadline, JobResult
from replyflow.services.send_reply import (
    MAX_SQS_DELAY_SECONDS,
    SEND_LEASE_SECONDS,
    log_row_outcome,
    release_if_active,
)

# The sends queues' VisibilityTimeout in template.yaml (tests/infra holds the two equal).
SENDS_VISIBILITY_TIMEOUT_SECONDS = 180
DEFAULT_LIMIT = 500
CHUNK = 100


def thresholds(lease_seconds: int = SEND_LEASE_SECONDS) -> dict[str, timedelta]:
    """How long a row may sit in each status before its job counts as lost."""
    queued = timedelta(seconds=SENDS_VISIBILITY_TIMEOUT_SECONDS + lease_seconds)
    return {
        "sending": timedelta(seconds=lease_seconds),
        "queued": queued,
        "deferred": queued + timedelta(seconds=MAX_SQS_DELAY_SECONDS),
    }


def run_ledger_sweep(
    sessions: sessionmaker[Session],
    publisher: QueuePublisher,
    *,
    now: datetime,
    deadline: Deadline,
    lease_seconds: int = SEND_LEASE_SECONDS,
    limit: int = DEFAULT_LIMIT,
) -> JobResult:
    result = JobResult("ledger-sweep")
    for name in ("sending_settled_unknown", "queued_republished", "deferred_republished", "parked_released"):
        result.counts[name] = 0  # a metric every run, zero included: its alarm needs the data point
    started = time.perf_counter()
    limits = thresholds(lease_seconds)
    result.details["thresholds_seconds"] = {k: int(v.total_seconds()) for k, v in limits.items()}
    steps: list[tuple[str, Callable[[], bool]]] = [
        (
            "sending",
            lambda: _settle_sending(sessions, now, lease_seconds, limits["sending"], limit, deadline, result),
        ),
        (
            "queued",
            lambda: _republish(sessions, publisher, "queued", now, limits["queued"], limit, deadline, result),
        ),
        (
            "deferred",
            lambda: _republish(
                sessions, publisher, "deferred", now, limits["deferred"], limit, deadline, result
            ),
        ),
        ("parked", lambda: _release_parked(sessions, publisher, limit, deadline, result)),
    ]
    for _name, step in steps:
        if not step():
            result.stopped_early = True
            break
    result.duration_seconds = time.perf_counter() - started
    return result


def _settle_sending(
    sessions: sessionmaker[Session],
    now: datetime,
    lease_seconds: int,
    older_than: timedelta,
    limit: int,
    deadline: Deadline,
    result: JobResult,
) -> bool:
    after_id, seen = 0, 0
    while seen < limit:
        if deadline.expired():
            return False
        with session_scope(sessions) as session:
            rows = ledger.stale_before(
                session, "sending", now - older_than, limit=min(CHUNK, limit - seen), after_id=after_id
            )
            for row in rows:
                settled = ledger.settle_stale_row(
                    session, row.tenant_id, row.id, lease_seconds=lease_seconds, now=now
                )
                if settled is None:
                    continue  # its worker settled it meanwhile
                log_row_outcome(
                    session,
                    settled,
                    "unknown",
                    "worker_lost",
                    "settled by the ledger sweeper: the worker died during the call",
                )
                result.counts["sending_settled_unknown"] += 1
        if not rows:
            return True
        seen += len(rows)
        after_id = rows[-1].id
    return True


def _republish(
    sessions: sessionmaker[Session],
    publisher: QueuePublisher,
    status: str,
    now: datetime,
    older_than: timedelta,
    limit: int,
    deadline: Deadline,
    result: JobResult,
) -> bool:
    after_id, seen = 0, 0
    while seen < limit:
        if deadline.expired():
            return False
        jobs: dict[str, list[str]] = {}
        with session_scope(sessions) as session:
            rows = ledger.stale_before(
                session, status, now - older_than, limit=min(CHUNK, limit - seen), after_id=after_id
            )
            for row in rows:
                if not ledger.touch(
                    session, row.tenant_id, row.id, status=status, seen=row.updated_at, now=now
                ):
                    continue  # a sender took it meanwhile
                body = SendJob(
                    tenant_id=row.tenant_id, account_id=row.account_id, outbound_id=row.id
                ).to_json()
                jobs.setdefault(sends_queue(row.priority), []).append(body)
        # After the commit, as every publish of a send job: the sender must find the row as it is now.
        for queue, bodies in jobs.items():
            publisher.publish(queue, bodies)
            result.counts[f"{status}_republished"] += len(bodies)
        if not rows:
            return True
        seen += len(rows)
        after_id = rows[-1].id
    return True


def _release_parked(
    sessions: sessionmaker[Session],
    publisher: QueuePublisher,
    limit: int,
    deadline: Deadline,
    result: JobResult,
) -> bool:
    with session_scope(sessions) as session:
        accounts = ledger.parked_on_active_accounts(session, limit=limit)
    for tenant_id, account_id in accounts:
        if deadline.expired():
            return False
        released = release_if_active(sessions, tenant_id, account_id, publisher)
        if released:
            logger.info(
                "parked rows released on an active account",
                extra={"tenant_id": tenant_id, "account_id": account_id, "released": released},
            )
        result.counts["parked_released"] += released
    return True
