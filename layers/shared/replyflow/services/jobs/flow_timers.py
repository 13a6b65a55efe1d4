"""The flow timer sweep (``flow-timers``, every minute): due delays and wait timeouts fire, once.

Each due ``flow_timers`` row (platform-wide; each names its tenant) is fired in its own transaction:
``FlowRunner.fire_timer`` claims it with one conditional UPDATE (``pending`` -> ``fired``) and applies
the run's advance in the same transaction, so a timer fires exactly once however many sweeps run,
and a failure rolls the claim back with the rest (the next sweep fires it). The sends it queued are
published after the commit (``after_commit``); a lost publish is the ledger sweeper's to republish.
Timers due within 15 minutes are also published on the events queue with that SQS delay
(``FlowTimerJob``, by the processor and by this job): the processor fires them through
:func:`fire_one` on time, and the sweep is the backstop for the rest and for any lost message.
The account's status and the plan's quota are read per timer, so a run whose account needs
re-authorisation or whose quota is used up ends with that reason instead of sending.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from replyflow.db.after_commit import after_commit
from replyflow.db.engine import session_scope
from replyflow.db.repositories import accounts as accounts_repo
from replyflow.db.repositories import flows as flows_repo
from replyflow.db.repositories import plans as plans_repo
from replyflow.domain.flow_engine import AccountFacts
from replyflow.domain.messages import SendJob, events_queue, queue_priority, sends_queue
from replyflow.observability import logger
from replyflow.ports import QueuePublisher
from replyflow.services.flow_runs import FlowRunner, FlowScope, timer_jobs
from replyflow.services.jobs.common import Deadline, JobResult
from replyflow.services.process_event import quota_left

DEFAULT_LIMIT = 500
# A delayed SQS message may arrive a little before its timer's due time (clocks differ): up to this
# early it fires; earlier, it is left to the sweep.
EARLY = timedelta(seconds=2)


def run_flow_timers(
    sessions: sessionmaker[Session],
    publisher: QueuePublisher,
    runner: FlowRunner,
    *,
    now: datetime,
    deadline: Deadline,
    limit: int = DEFAULT_LIMIT,
    tenant_ids: Sequence[str] | None = None,
) -> JobResult:
    result = JobResult("flow-timers")
    with session_scope(sessions) as session:
        due = [
            (t.tenant_id, t.id)
            for t in flows_repo.due_timers(session, now=now, limit=limit, tenant_ids=tenant_ids)
        ]
    result.counts["due"] = len(due)
    for tenant_id, timer_id in due:
        if deadline.remaining() < 1:
            result.stopped_early = True
            break
        try:
            fired = fire_one(sessions, publisher, runner, tenant_id, timer_id, now=now)
        except Exception as error:  # the claim rolled back with it: the next sweep fires it
            result.counts["failed"] += 1
            logger.warning("flow timer not fired", extra={"timer_id": timer_id, "error": str(error)[:200]})
            continue
        result.counts["fired" if fired else "stale"] += 1
    return result


def fire_one(
    sessions: sessionmaker[Session],
    publisher: QueuePublisher,
    runner: FlowRunner,
    tenant_id: str,
    timer_id: int,
    *,
    now: datetime,
) -> bool:
    """Fire one timer if it is pending and due (the sweep's step, and the processor's on a
    ``FlowTimerJob``); True when this call fired it."""
    with session_scope(sessions) as session:
        timer = flows_repo.get_timer(session, tenant_id, timer_id)
        if timer is None or timer.status != "pending" or timer.due_at > now + EARLY:
            return False
        account = accounts_repo.get(session, tenant_id, timer.account_id)
        try:
            priority = queue_priority(plans_repo.plan_for_tenant(session, tenant_id).queue_priority)
        except LookupError:
            priority = queue_priority("default")
        scope = FlowScope(
            tenant_id=tenant_id,
            account_id=timer.account_id,
            priority=priority,
            account_facts=lambda: AccountFacts(
                status=account.status if account is not None else "disabled",
                quota_left=quota_left(session, tenant_id, now),
            ),
            event_key=f"flow-timer:{timer.id}",
        )
        applied = runner.fire_timer(session, scope, timer, now=now)
        if applied is None:
            return False
        account_id = timer.account_id
        if applied.queued:
            bodies = [
                SendJob(tenant_id=tenant_id, account_id=account_id, outbound_id=i).to_json()
                for i in applied.queued
            ]
            after_commit(session, lambda: publisher.publish(sends_queue(priority), bodies))
        if applied.timer is not None:
            jobs = timer_jobs(tenant_id, account_id, [applied.timer], now=now)
            after_commit(session, lambda: _publish_timers(publisher, events_queue(priority), jobs))
        return True


def _publish_timers(publisher: QueuePublisher, queue: str, jobs: list[tuple[str, int]]) -> None:
    try:
        for body, delay in jobs:
            publisher.publish(queue, [body], delay_seconds=delay)
    except Exception as error:  # the next sweep fires it
        logger.warning("flow timer not published: the sweep fires it", extra={"error": str(error)[:200]})
