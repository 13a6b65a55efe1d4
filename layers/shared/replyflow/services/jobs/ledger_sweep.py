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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from replyflow.db.engine import session_scope
from replyflow.db.models import OutboundMessage
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
COUNTS = ("sending_settled_unknown", "queued_republished", "deferred_republished", "parked_released")
SETTLED_DETAIL = "settled by the ledger sweeper: the worker died during the call"


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
    started = time.perf_counter()
    sweep = _Sweep(sessions, publisher, now, deadline, lease_seconds, limit)
    limits = thresholds(lease_seconds)
    sweep.result.details["thresholds_seconds"] = {k: int(v.total_seconds()) for k, v in limits.items()}
    finished = (
        sweep.settle_sending(limits["sending"])
        and sweep.republish("queued", limits["queued"])
        and sweep.republish("deferred", limits["deferred"])
        and sweep.release_parked()
    )
    sweep.result.stopped_early = not finished
    sweep.result.duration_seconds = time.perf_counter() - started
    return sweep.result


@dataclass
class _Sweep:
    """One run. Each step returns False when the deadline stopped it."""

    sessions: sessionmaker[Session]
    publisher: QueuePublisher
    now: datetime
    deadline: Deadline
    lease_seconds: int
    limit: int
    result: JobResult = field(default_factory=lambda: JobResult("ledger-sweep"))

    def __post_init__(self) -> None:
        for name in COUNTS:
            self.result.counts[name] = 0  # a data point every run, zero included: alarms need it

    def _chunks(self, status: str, older_than: timedelta) -> Iterator[tuple[Session, list[OutboundMessage]]]:
        """Stale rows in ``status``, a chunk per transaction, at most ``limit`` in all."""
        after_id, seen = 0, 0
        while seen < self.limit:
            if self.deadline.expired():
                raise _DeadlineReached
            with session_scope(self.sessions) as session:
                rows = ledger.stale_before(
                    session,
                    status,
                    self.now - older_than,
                    limit=min(CHUNK, self.limit - seen),
                    after_id=after_id,
                )
                if not rows:
                    return
                yield session, rows
            seen += len(rows)
            after_id = rows[-1].id

    def settle_sending(self, older_than: timedelta) -> bool:
        try:
            for session, rows in self._chunks("sending", older_than):
                for row in rows:
                    settled = ledger.settle_stale_row(
                        session, row.tenant_id, row.id, lease_seconds=self.lease_seconds, now=self.now
                    )
                    if settled is None:
                        continue  # its worker settled it meanwhile
                    log_row_outcome(session, settled, "unknown", "worker_lost", SETTLED_DETAIL)
                    self.result.counts["sending_settled_unknown"] += 1
        except _DeadlineReached:
            return False
        return True

    def republish(self, status: str, older_than: timedelta) -> bool:
        # A chunk's jobs go out after its commit, as every send job (the sender must find the row as
        # it is now): the generator commits a chunk when asked for the next one, or when it ends.
        jobs: dict[str, list[str]] = {}
        try:
            for session, rows in self._chunks(status, older_than):
                self._publish(status, jobs)  # the previous chunk, committed by now
                for row in rows:
                    if not ledger.touch(
                        session, row.tenant_id, row.id, status=status, seen=row.updated_at, now=self.now
                    ):
                        continue  # a sender took it meanwhile
                    job = SendJob(tenant_id=row.tenant_id, account_id=row.account_id, outbound_id=row.id)
                    jobs.setdefault(sends_queue(row.priority), []).append(job.to_json())
        except _DeadlineReached:
            self._publish(status, jobs)
            return False
        self._publish(status, jobs)
        return True

    def _publish(self, status: str, jobs: dict[str, list[str]]) -> None:
        for queue, bodies in jobs.items():
            self.publisher.publish(queue, bodies)
            self.result.counts[f"{status}_republished"] += len(bodies)
        jobs.clear()

    def release_parked(self) -> bool:
        with session_scope(self.sessions) as session:
            accounts = ledger.parked_on_active_accounts(session, limit=self.limit)
        for tenant_id, account_id in accounts:
            if self.deadline.expired():
                return False
            released = release_if_active(self.sessions, tenant_id, account_id, self.publisher)
            if released:
                logger.info(
                    "parked rows released on an active account",
                    extra={"tenant_id": tenant_id, "account_id": account_id, "released": released},
                )
            self.result.counts["parked_released"] += released
        return True


class _DeadlineReached(Exception):
    pass
