"""Retention of flow runs: a tenant's finished runs (``completed`` / ``ended``) that ended before its
plan's cutoff are deleted with their timers, in chunks of at most ``chunk_size`` runs, each chunk its
own short transaction; a run still waiting or delayed is never deleted, however old it is.

Deleting is by predicate (``ended_at`` before the cutoff and ``active_key`` null), so like the other
retention steps it keeps no checkpoint: stopped by the deadline, the next run deletes what is left.
The step decisions are ``automation_logs`` rows, pruned with the logs; the step counters
(``flow_step_stats``, ``flow_step_daily``) hold no person's data and stay, like ``daily_stats``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from replyflow.db.repositories import flows as flows_repo
from replyflow.services.jobs.common import Deadline, delete_in_chunks
from replyflow.services.jobs.policy import TenantRetention


def purge_flow_runs(
    sessions: sessionmaker[Session],
    policy: TenantRetention,
    now: datetime,
    deadline: Deadline,
    chunk_size: int,
    counts: Counter[str],
) -> bool:
    """Delete the tenant's runs that ended before its cutoff, and their timers; False when the
    deadline stopped it."""
    cutoff = policy.cutoff(now)

    def chunk() -> int:
        with sessions() as session:
            ids = flows_repo.finished_runs_before(session, policy.tenant_id, cutoff, chunk_size)
            runs, timers = flows_repo.delete_finished_runs(session, policy.tenant_id, ids)
            session.commit()
        counts["deleted_flow_runs"] += runs
        counts["deleted_flow_timers"] += timers
        return len(ids)

    return delete_in_chunks(deadline, chunk_size, chunk)
