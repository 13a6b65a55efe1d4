"""The sender: one ``outbound_messages`` row -> at most one Graph API call (docs/architecture.md#pipeline).

Per send job:
1. load the row; a terminal row (sent, skipped, unknown, permanently failed) or a parked one is left
   alone, so redelivered and duplicate jobs are harmless; a row stuck in ``sending`` past the lease
   belongs to a worker that died mid-call and becomes ``unknown`` (it may have gone out). Inside the
   lease the job is published again for when the lease ends, so a dead owner's row is settled even
   when the redelivery came early (a duplicate job; the local stack's ``--visibility-scale``). The
   lease outlives a sender's Timeout and ends before the sends queues' visibility timeout
   (``tests/infra``);
2. park the row if the account needs re-authorisation; skip it if its window (``not_after``) passed;
3. own the row (``ledger.start_send``: one conditional UPDATE) - only the owner calls Graph;
4. take a slot from the account's limiter (a batch's leased rows take theirs in one call,
   ``SendLimiter.acquire_many``, each with the same answer it would get alone); none -> ``deferred``
   and re-published with the delay the limiter names (SQS caps a delay at 900 s; a longer wait just
   defers again). Never a failure. A limiter that does not answer (Redis down) defers the row too,
   for ``limiter_retry_seconds``: it was never sent, so it must not stay ``sending`` (that would end
   as ``unknown``). When the
   account's window is missing in Redis the limiter rebuilds it from the ledger's ``sent_at``;
5. call Graph and settle the row by the error class (``adapters.graph_client``): sent (a DM's
   quota was reserved when the row was owned in 3., atomically against the plan's monthly quota: none
   left -> skipped ``quota_exceeded``; every outcome but sent gives it back; usage at 90 % or more
   pauses the account for a minute, or
   every account when it is the app-level ``X-App-Usage``); throttle -> slot back, account paused
   for the regain time, deferred; token_invalid -> account ``needs_reauth`` (its caches
   invalidated), row parked;
   policy block (368) -> the same parking with ``status_reason`` ``policy_block_368`` (the account
   sends nothing until it is re-connected, which releases its parked messages), and an error log;
   misconfigured (3, 10, 200-299: a missing capability or permission) -> skipped, not retried, and an
   error log (the handler counts both for alarms);
   outside window / user unavailable / already replied -> skipped with that reason; transient ->
   slot back, re-published with exponential backoff and full jitter up to ``max_inline_attempts``,
   after which the record fails (SQS redelivers it, then moves it to the DLQ); ambiguous -> ``unknown``
   and never resent (a comment cannot get two private replies); permanent -> failed.
Every outcome writes a ``reply_logs`` row and an ``automation_logs`` row in the same transaction as the
ledger change. The Graph call happens outside any transaction. Every limiter call after the slot is
taken (release, pause) is best effort: a Redis failure there is logged and never stops the ledger
from settling.

Parking is race-free against a reconnect. The account is flagged only while it still holds the token
that failed (a reconnect or refresh that stored a new one wins, and the row is simply retried), and
every park is followed, after its commit, by a fresh read of the account: active again -> its parked
rows are released. The reconnect does the mirror image (:func:`release_parked` runs once more after
its commit), so whichever commits last sees the other's write and no row stays parked on an active
account.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.graph_client import GraphError, GraphResult
from replyflow.clock import SystemClock
from replyflow.db.after_commit import after_commit
from replyflow.db.engine import session_scope
from replyflow.db.models import InstagramAccount, OutboundMessage
from replyflow.db.repositories import accounts as accounts_repo
from replyflow.db.repositories import ledger
from replyflow.db.repositories import logs as logs_repo
from replyflow.db.repositories import plans as plans_repo
from replyflow.db.repositories import usage as usage_repo
from replyflow.domain.lifecycle import POLICY_BLOCK_REASON as POLICY_BLOCK_REASON
from replyflow.domain.lifecycle import TRANSIENT_ERROR, OutboundStatus, SendDecision, SendStep, decide_send
from replyflow.domain.messages import SendJob, sends_queue
from replyflow.errors import ReplyflowError
from replyflow.observability import bind_tenant, logger
from replyflow.ports import (
    Cache,
    Clock,
    GraphSender,
    QueuePublisher,
    SendLimiter,
    SlotLike,
    SlotRequest,
    TokenDecrypter,
)
from replyflow.services import cache_keys
from replyflow.services.sqs_batch import run_each

MAX_SQS_DELAY_SECONDS = 900
# The records of one batch sent at once (the handler's threads); the sender's pool holds as many.
SEND_CONCURRENCY = 10
SEND_LEASE_SECONDS = 120
# A limiter that does not answer: the row comes back after this long (with jitter). Long enough not to
# spin through the queue during an outage, short enough that a Redis failover costs under a minute.
LIMITER_RETRY_SECONDS = 30.0
HOUR = timedelta(hours=1)
# Usage headers at or above this share of Meta's limit pause sending (docs/instagram.md#usage-headers).
NEAR_LIMIT_PCT = 90
NEAR_LIMIT_PAUSE_SECONDS = 60.0
SKIP_KINDS = frozenset({"outside_window", "user_unavailable", "already_replied"})
# An account Instagram blocked is parked like one with a rejected token: both wait for a reconnect.


class SendRetryExhaustedError(ReplyflowError):
    """A transient failure after the inline retries: the record fails so SQS retries, then DLQs it."""

    code = "send_retry_exhausted"
    status = 503


# docs/instagram.md#errors: code 4 is the app-level platform limit, shared by every account.
APP_THROTTLE_CODES = frozenset({4})


@dataclass(frozen=True)
class SendOutcome:
    status: str  # sent / deferred / parked / skipped / failed / unknown / retry / noop
    reason: str | None = None
    delay_seconds: int = 0


@dataclass(frozen=True)
class _Leased:
    row_id: int
    kind: str
    automation_id: str | None
    payload: dict[str, Any]
    comment_id: str | None
    recipient_id: str | None
    priority: str
    attempts: int
    ig_user_id: str
    token_blob: bytes
    budget: int
    quota_period: str | None = None  # the month a DM's quota was reserved in (given back unless sent)


class SendService:
    """Construct once per process (see ``wiring.pipeline.sender``); ``send`` is thread-safe."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        graph: GraphSender,
        limiter: SendLimiter,
        cipher: TokenDecrypter,
        publisher: QueuePublisher,
        cache: Cache,
        clock: Clock | None = None,
        max_inline_attempts: int = 5,
        backoff_base_seconds: float = 2.0,
        lease_seconds: int = SEND_LEASE_SECONDS,
        rng: Callable[[], float] = random.random,
        limiter_retry_seconds: float = LIMITER_RETRY_SECONDS,
        transaction_group: Callable[[str], str] | None = None,
        lease_batches: bool = True,
    ) -> None:
        self._sessions = sessions
        self._graph = graph
        self._limiter = limiter
        self._cipher = cipher
        self._publisher = publisher
        self._cache = cache
        self._clock = clock or SystemClock()
        self._max_attempts = max_inline_attempts
        self._backoff = backoff_base_seconds
        self._lease = lease_seconds
        self._rng = rng
        self._limiter_retry = limiter_retry_seconds
        # tenant -> its database (the shard): a batch's sends are settled together per database.
        self._transaction_group = transaction_group or (lambda _tenant: "")
        # False: a batch's rows leased one by one, each by its own job (as before the batch lease).
        self._lease_batches = lease_batches
        self._pools = threading.local()  # the calling thread's pool of send threads (``_run_each``)

    # -- the job -----------------------------------------------------------------------------------

    def send(self, job: SendJob) -> SendOutcome:
        attempt = self.attempt(job)
        if isinstance(attempt, SentUnsettled):
            return self._settle_sent(attempt)
        return attempt

    def attempt(self, job: SendJob) -> SendOutcome | SentUnsettled:
        """``send`` up to the Graph call: a send that went out comes back unsettled (its row still
        ``sending``) for ``settle_sent``, which settles a batch's sends in one transaction; every
        other outcome is settled here."""
        bind_tenant(job.tenant_id, job.account_id)
        leased_or_outcome = self._lease_row(job)
        if isinstance(leased_or_outcome, SendOutcome):
            if leased_or_outcome.status == "parked":
                self._recheck_parked(job)
            return leased_or_outcome
        return self._send_leased(job, leased_or_outcome)

    def attempt_batch(self, jobs: Sequence[SendJob]) -> list[SendOutcome | SentUnsettled | Exception]:
        """``attempt`` for a batch's jobs, their rows leased together first: one transaction per
        database (``_lease_together``), then the leased rows' limiter slots in one call
        (``SendLimiter.acquire_many``: two Redis round trips for the batch), then every job on a
        thread of the service's pool up to its Graph call. A job that transaction did not lease (not
        sendable now, a duplicate, a tenant being moved, a lease that conflicted or failed) takes
        ``attempt``'s own path, alone. Each job's outcome, or the exception it raised."""
        leased = self._lease_together(jobs) if self._lease_batches else {}
        slots = self._slots_for(jobs, leased)

        def one(i: int) -> SendOutcome | SentUnsettled:
            job = jobs[i]
            if i not in leased:
                return self.attempt(job)
            bind_tenant(job.tenant_id, job.account_id)
            return self._send_leased(job, leased[i], slots.get(i))

        return self._run_each(one, range(len(jobs)))

    def _slots_for(
        self, jobs: Sequence[SendJob], leased: dict[int, _Leased]
    ) -> dict[int, SlotLike | Exception]:
        """The leased jobs' slots, asked for together: job index -> its slot, or the limiter's error."""
        if not leased:
            return {}
        order = sorted(leased)
        requests = [
            SlotRequest(jobs[i].account_id, leased[i].budget, self._history_of(jobs[i], leased[i]))
            for i in order
        ]
        try:
            answers = self._limiter.acquire_many(requests)
        except Exception as error:  # the limiter did not answer: each job defers on its thread
            return dict.fromkeys(order, error)
        return dict(zip(order, answers, strict=True))

    def _history_of(self, job: SendJob, leased: _Leased) -> Callable[[], list[int]]:
        return lambda: self._send_history(job, leased)

    def _run_each(
        self, work: Callable[[int], SendOutcome | SentUnsettled], items: Sequence[int]
    ) -> list[SendOutcome | SentUnsettled | Exception]:
        """``run_each`` (``services.sqs_batch``) on a pool of ``SEND_CONCURRENCY`` threads kept for the
        life of the calling thread: starting ten threads per batch cost about a millisecond each
        while the first ones were already calling, so the batch's last Graph call went out ~10 ms
        after its first (docs/scaling.md#the-sender). One pool per calling thread, as one per batch
        was before: where batches run at once in one process (the local stack's worker processes),
        each still gets its ten threads; a thread's pool ends with it."""
        pool: ThreadPoolExecutor | None = getattr(self._pools, "executor", None)
        if pool is None and len(items) > 1:
            pool = ThreadPoolExecutor(max_workers=SEND_CONCURRENCY, thread_name_prefix="send")
            self._pools.executor = pool
        return run_each(work, items, max_workers=SEND_CONCURRENCY, pool=pool)

    def _send_leased(
        self, job: SendJob, leased: _Leased, slot: SlotLike | Exception | None = None
    ) -> SendOutcome | SentUnsettled:
        """A leased row from its limiter slot (taken here unless ``slot`` is given: the batch's, or
        the error the limiter answered it with) to its Graph call (``attempt``)."""
        if isinstance(slot, Exception):
            return self._limiter_unavailable(job, leased, slot)
        if slot is None:
            try:
                slot = self._limiter.acquire(
                    job.account_id, leased.budget, history=lambda: self._send_history(job, leased)
                )
            except Exception as error:
                return self._limiter_unavailable(job, leased, error)
        if not slot.granted:
            return self._defer(job, leased, slot.delay_seconds, "rate_limited", "no slot in the send budget")
        return self._call_with_slot(job, leased, slot)

    def _limiter_unavailable(self, job: SendJob, leased: _Leased, error: Exception) -> SendOutcome:
        # Nothing went out: the row waits and comes back. Left "sending", it would be written off as
        # ``unknown`` (never sent) once the lease ends.
        logger.warning("send limiter unavailable: the message waits", extra={"error": str(error)})
        delay = self._limiter_retry * (0.5 + self._rng() / 2)
        return self._defer(job, leased, delay, "limiter_unavailable", "the send limiter did not answer")

    def _call_with_slot(self, job: SendJob, leased: _Leased, slot: SlotLike) -> SendOutcome | SentUnsettled:
        """The token decrypted and the Graph call made, with a slot held (given back if nothing
        went out)."""
        try:
            token = self._cipher.decrypt(leased.token_blob, context=job.account_id)
        except InvalidTag:  # this row's ciphertext does not open (copied, or tampered with)
            self._release(job, slot.token)
            return self._needs_reauth(job, leased, GraphError("token_invalid", "stored token unreadable"))
        except Exception:
            # The cipher itself is wrong (WrongKeyError: another TOKEN_ENCRYPTION_KEY; a bug): nothing
            # went out, so the slot and the row go back and the record fails loudly instead of parking.
            self._release(job, slot.token)
            self._give_back(job, leased, "cipher_error")
            raise
        try:
            result = self._call(leased, token)
        except GraphError as error:
            if error.kind != "ambiguous":
                self._release(job, slot.token)
            return self._settle_error(job, leased, error)
        return SentUnsettled(job, leased, result)

    # -- the limiter, best effort once a slot is held ----------------------------------------------

    def _send_history(self, job: SendJob, leased: _Leased) -> list[int]:
        """Epoch ms of the account's sends in the last hour, for a limiter whose window was lost."""
        since = self._clock.now() - HOUR
        with session_scope(self._sessions) as session:
            times = ledger.recent_send_times(
                session, job.tenant_id, job.account_id, since=since, exclude_id=leased.row_id
            )
        return [int(t.replace(tzinfo=UTC).timestamp() * 1000) for t in times]

    def _release(self, job: SendJob, token: str) -> None:
        try:
            self._limiter.release(job.account_id, token)
        except Exception as error:  # the slot stays counted: the budget errs on the safe side
            logger.warning("send limiter release failed", extra={"error": str(error)})

    def _pause(self, job: SendJob, seconds: float) -> None:
        try:
            self._limiter.pause(job.account_id, seconds)
        except Exception as error:
            logger.warning("send limiter pause failed", extra={"error": str(error), "seconds": seconds})

    def _pause_all(self, seconds: float) -> None:
        try:
            self._limiter.pause_all(seconds)
        except Exception as error:
            logger.warning("send limiter app pause failed", extra={"error": str(error), "seconds": seconds})

    def _recheck_parked(self, job: SendJob) -> None:
        try:
            release_if_active(self._sessions, job.tenant_id, job.account_id, self._publisher)
        except Exception as error:  # the ledger sweeper releases it on its next run
            logger.warning("parked row not re-checked", extra={"error": str(error)})

    def _lease_row(self, job: SendJob) -> _Leased | SendOutcome:
        now = self._clock.now()
        with session_scope(self._sessions) as session:
            row = ledger.get_outbound(session, job.tenant_id, job.outbound_id)
            if row is None or row.account_id != job.account_id:
                logger.warning("send job for a missing row", extra={"outbound_id": job.outbound_id})
                return SendOutcome("noop", "missing")
            account = accounts_repo.get(session, job.tenant_id, job.account_id)
            decision = _decide(row, account, now)
            if decision.step == SendStep.NOOP:
                return SendOutcome("noop", decision.reason)
            if decision.step == SendStep.IN_FLIGHT:
                if ledger.settle_stale(session, job.tenant_id, row.id, lease_seconds=self._lease, now=now):
                    self._log(session, row, "unknown", "worker_lost", "a worker died during the call")
                    return SendOutcome("unknown", "worker_lost")
                return self._recheck_after_lease(job, row, now)
            if decision.step in (SendStep.SKIP, SendStep.PARK):
                status = OutboundStatus.SKIPPED if decision.step == SendStep.SKIP else OutboundStatus.PARKED
                reason = str(decision.reason)
                ledger.finish(session, job.tenant_id, row.id, status=status, error_code=reason)
                self._log(session, row, status, reason)
                return SendOutcome(status, reason)
            assert account is not None  # SEND implies an account
            if not ledger.start_send(session, job.tenant_id, row.id, now=now):
                return SendOutcome("noop", "taken")
            quota_period = self._reserve_quota(session, job, row, now)
            if isinstance(quota_period, SendOutcome):
                return quota_period
            return _leased(row, account, quota_period)

    # -- a batch's rows leased together ------------------------------------------------------------

    def _lease_together(self, jobs: Sequence[SendJob]) -> dict[int, _Leased]:
        """The rows a batch can send now, owned in one transaction per database: job index -> lease.
        Each job's first occurrence only (a duplicate takes its own path and finds the row in flight);
        a tenant being moved between databases is left to its jobs' own paths."""
        groups: dict[str, list[int]] = {}
        seen: set[tuple[str, int]] = set()
        for i, job in enumerate(jobs):
            group = self._group_of(job.tenant_id)
            if (job.tenant_id, job.outbound_id) in seen or group.startswith("alone:"):
                continue
            seen.add((job.tenant_id, job.outbound_id))
            groups.setdefault(group, []).append(i)
        leased: dict[int, _Leased] = {}
        for indexes in groups.values():
            leased.update(self._lease_group(jobs, indexes))
        return leased

    def _lease_group(self, jobs: Sequence[SendJob], indexes: Sequence[int]) -> dict[int, _Leased]:
        first = jobs[indexes[0]]
        bind_tenant(first.tenant_id, first.account_id)  # the session's database
        now = self._clock.now()
        try:
            with session_scope(self._sessions) as session:
                return self._lease_rows(session, jobs, indexes, now)
        except Exception as error:  # nothing owned: every job takes its own path
            logger.warning("sends not leased together: one by one", extra={"error": str(error)[:200]})
            return {}

    def _lease_rows(
        self, session: Session, jobs: Sequence[SendJob], indexes: Sequence[int], now: datetime
    ) -> dict[int, _Leased]:
        """The jobs' rows (of every tenant among them) with their accounts and DM quotas in one
        SELECT, each tenant's DMs among those sendable now reserved in one UPDATE per tenant, and one
        UPDATE owning them all: three statements for a batch of one tenant, one more per further
        tenant. A row not sendable now is left as it is, for its job's own path to settle; a row
        another worker owned meanwhile makes the UPDATE own fewer than chosen, and the transaction
        is rolled back (``_lease_group``)."""
        keys = [(jobs[i].tenant_id, jobs[i].outbound_id) for i in indexes]
        found = {(f.row.tenant_id, f.row.id): f for f in ledger.outbound_for_send(session, keys)}
        by_tenant: dict[str, list[tuple[int, ledger.OutboundForSend]]] = {}
        for i, key in zip(indexes, keys, strict=True):
            f = found.get(key)
            if f is None or f.account.id != jobs[i].account_id:
                continue  # its own path answers it (a missing row)
            if _decide(f.row, f.account, now).step == SendStep.SEND:
                by_tenant.setdefault(key[0], []).append((i, f))
        chosen: list[tuple[int, ledger.OutboundForSend]] = []
        for tenant_id, rows in sorted(by_tenant.items()):  # quota row locks in one order
            dms = sum(1 for _, f in rows if f.row.kind in usage_repo.DM_KINDS)
            if dms and not usage_repo.reserve_dms(session, tenant_id, rows[0][1].dm_quota, dms, at=now):
                # The quota cannot cover them all: each DM reserves (or is skipped) on its own path.
                rows = [(i, f) for i, f in rows if f.row.kind not in usage_repo.DM_KINDS]
            chosen += rows
        if not chosen:
            return {}
        owned = ledger.start_sends(session, [(f.row.tenant_id, f.row.id) for _, f in chosen], now=now)
        if owned != len(chosen):
            raise _LeaseConflictError("a row of the batch was owned meanwhile")
        period = usage_repo.period_of(now)
        return {i: _leased(f.row, f.account, period) for i, f in chosen}

    def _reserve_quota(
        self, session: Session, job: SendJob, row: OutboundMessage, now: datetime
    ) -> str | SendOutcome | None:
        """The exact quota: a DM is counted when its send is claimed, atomically against the plan's
        limit, and given back if it does not go out (``_quota_back``). The period reserved in, None
        for a kind without quota, or the skip when none is left."""
        if row.kind not in usage_repo.DM_KINDS:
            return None
        quota = plans_repo.plan_for_tenant(session, job.tenant_id).monthly_dm_quota
        if usage_repo.reserve_dm(session, job.tenant_id, quota, at=now):
            return usage_repo.period_of(now)
        reason = "quota_exceeded"
        ledger.finish(session, job.tenant_id, row.id, status=OutboundStatus.SKIPPED, error_code=reason)
        self._log(session, row, OutboundStatus.SKIPPED, reason, "the plan's monthly DM quota is used up")
        return SendOutcome(OutboundStatus.SKIPPED, reason)

    def _recheck_after_lease(self, job: SendJob, row: OutboundMessage, now: datetime) -> SendOutcome:
        # Nothing changed in this transaction, so publishing inside it is safe.
        left = self._lease - (now - row.updated_at).total_seconds()
        delay_s = min(MAX_SQS_DELAY_SECONDS, max(1, math.ceil(left) + 1))
        self._publisher.publish(sends_queue(row.priority), [job.to_json()], delay_seconds=delay_s)
        logger.info(
            "send job for a row in flight: checked again when its lease ends",
            extra={"outbound_id": row.id, "recheck_in": delay_s},
        )
        return SendOutcome("noop", "in_flight", delay_s)

    def _call(self, leased: _Leased, token: str) -> GraphResult:
        payload = leased.payload
        if leased.kind == "public_reply":
            return self._graph.reply_to_comment(str(payload["comment_id"]), token, str(payload["message"]))
        return self._graph.send_message(leased.ig_user_id, token, payload["recipient"], payload["message"])

    # -- outcomes ----------------------------------------------------------------------------------

    def settle_sent(self, sent: Sequence[SentUnsettled]) -> list[SendOutcome | Exception]:
        """Settle sends that went out: their rows ``sent`` (one UPDATE, whatever their tenants), their
        ``reply_logs`` and ``automation_logs`` rows (three statements), in one transaction per
        database. If that transaction fails, each is settled alone, and one that
        fails then gets its exception: its record fails, and its row, left ``sending``, becomes
        ``unknown`` after the lease (it went out; it is never sent again)."""
        out: list[SendOutcome | Exception | None] = [None] * len(sent)
        groups: dict[str, list[int]] = {}
        for i, unsettled in enumerate(sent):
            groups.setdefault(self._group_of(unsettled.job.tenant_id), []).append(i)
        for indexes in groups.values():
            if self._settle_together([sent[i] for i in indexes]):
                for i in indexes:
                    out[i] = self._after_sent(sent[i])
                continue
            for i in indexes:
                try:
                    out[i] = self._settle_sent(sent[i])
                except Exception as error:
                    out[i] = error
        return [outcome if outcome is not None else SendOutcome("noop") for outcome in out]

    def _group_of(self, tenant_id: str) -> str:
        try:
            return self._transaction_group(tenant_id)
        except Exception:  # a tenant being moved between shards: settled alone (and fails alone)
            return f"alone:{tenant_id}"

    def _settle_together(self, sent: Sequence[SentUnsettled]) -> bool:
        first = sent[0].job
        bind_tenant(first.tenant_id, first.account_id)  # the session's database
        try:
            with session_scope(self._sessions) as session:
                self._write_sent(session, sent)
        except Exception as error:
            logger.warning("sends not settled together: one by one", extra={"error": str(error)[:200]})
            return False
        return True

    def _settle_sent(self, sent: SentUnsettled) -> SendOutcome:
        bind_tenant(sent.job.tenant_id, sent.job.account_id)
        with session_scope(self._sessions) as session:
            self._write_sent(session, [sent])
        return self._after_sent(sent)

    def _write_sent(self, session: Session, sent: Sequence[SentUnsettled]) -> None:
        now = self._clock.now()
        outcomes: list[_OutcomeLogs] = []
        message_ids: dict[ledger.SendKey, str | None] = {}
        for job, leased, result in ((s.job, s.leased, s.result) for s in sent):
            message_ids[(job.tenant_id, leased.row_id)] = result.message_id
            if leased.kind in usage_repo.DM_KINDS and leased.quota_period is None:
                usage_repo.add_dms(session, job.tenant_id, 1, at=now)  # claimed before reservations
            outcomes.append(_leased_logs(job, leased, "sent", None, f"message {result.message_id}"))
        ledger.finish_sent(session, message_ids, sent_at=now)
        _write_logs(session, outcomes)

    def _after_sent(self, sent: SentUnsettled) -> SendOutcome:
        job, result = sent.job, sent.result
        # Near Meta's limit: slow down before it throttles (calling while throttled extends it).
        if result.usage_pct is not None and result.usage_pct >= NEAR_LIMIT_PCT:
            self._pause(job, NEAR_LIMIT_PAUSE_SECONDS)
        if result.app_usage_pct is not None and result.app_usage_pct >= NEAR_LIMIT_PCT:
            # The app's limit is shared by every account: pausing this one alone would not help.
            self._pause_all(NEAR_LIMIT_PAUSE_SECONDS)
            logger.warning(
                "app-level usage near its limit: all sending paused", extra={"pct": result.app_usage_pct}
            )
        return SendOutcome("sent")

    def _settle_error(self, job: SendJob, leased: _Leased, error: GraphError) -> SendOutcome:
        logger.info("graph send failed", extra={"outbound_id": leased.row_id, "error": str(error)})
        if error.kind == "throttle":
            wait = error.retry_after or 60.0
            if error.graph_code in APP_THROTTLE_CODES:
                self._pause_all(wait)  # the app's limit is shared by every account
            else:
                self._pause(job, wait)
            return self._defer(job, leased, wait, error.error_code, error.message)
        if error.kind == "token_invalid":
            return self._needs_reauth(job, leased, error)
        if error.kind == "policy_block":
            return self._park_account(
                job,
                leased,
                error,
                reason=POLICY_BLOCK_REASON,
                status_reason=POLICY_BLOCK_REASON,
                log_line="sending paused: Instagram blocked the account (code 368)",
            )
        if error.kind == "misconfigured":
            logger.error(
                "send refused: the app or account lacks a capability or permission",
                extra={"reason": error.error_code, "outbound_id": leased.row_id, "error": str(error)},
            )
            self._finish(job, leased, "skipped", error.error_code, error)
            return SendOutcome("skipped", "misconfigured")
        if error.kind in SKIP_KINDS:
            return self._finish(job, leased, "skipped", error.kind, error)
        if error.kind == "ambiguous":
            return self._finish(job, leased, "unknown", "ambiguous", error)
        if error.kind == "transient":
            if leased.attempts < self._max_attempts:
                delay = self._backoff_delay(leased.attempts)
                return self._defer(job, leased, delay, TRANSIENT_ERROR, error.message, status="retry")
            self._finish(job, leased, "failed", TRANSIENT_ERROR, error)
            raise SendRetryExhaustedError(f"outbound {leased.row_id}: {error}")
        return self._finish(job, leased, "failed", error.error_code, error)

    def _backoff_delay(self, attempts: int) -> float:
        # Exponential backoff with full jitter: spreads a burst of failures over time.
        ceiling = min(MAX_SQS_DELAY_SECONDS, self._backoff * (2 ** max(0, attempts - 1)))
        return max(1.0, ceiling * self._rng())

    def _defer(
        self,
        job: SendJob,
        leased: _Leased,
        delay: float,
        reason: str,
        detail: str,
        *,
        status: str = "deferred",
    ) -> SendOutcome:
        delay_s = min(MAX_SQS_DELAY_SECONDS, max(1, math.ceil(delay)))
        with session_scope(self._sessions) as session:
            ledger.finish(
                session,
                job.tenant_id,
                leased.row_id,
                status="deferred",
                error_code=reason,
                uncount_attempt=status == "deferred",
            )
            self._quota_back(session, job, leased)
            self._log_leased(session, job, leased, "deferred", reason, f"{detail} (retry in {delay_s}s)")
        # After the commit: the next worker must find the row sendable.
        self._publisher.publish(sends_queue(leased.priority), [job.to_json()], delay_seconds=delay_s)
        return SendOutcome(status, reason, delay_s)

    def _give_back(self, job: SendJob, leased: _Leased, reason: str) -> None:
        with session_scope(self._sessions) as session:
            ledger.finish(
                session,
                job.tenant_id,
                leased.row_id,
                status="deferred",
                error_code=reason,
                uncount_attempt=True,
            )
            self._quota_back(session, job, leased)

    def _quota_back(self, session: Session, job: SendJob, leased: _Leased) -> None:
        """The DM reserved at the claim goes back: this attempt did not send it."""
        if leased.quota_period is not None:
            usage_repo.release_dm(session, job.tenant_id, leased.quota_period, now=self._clock.now())

    def _needs_reauth(self, job: SendJob, leased: _Leased, error: GraphError) -> SendOutcome:
        outcome = self._park_account(
            job, leased, error, reason="needs_reauth", status_reason=f"token rejected: {error.message}"
        )
        if outcome.status == "parked":
            logger.warning("account needs re-authorisation", extra={"error": str(error)})
        return outcome

    def _park_account(
        self,
        job: SendJob,
        leased: _Leased,
        error: GraphError,
        *,
        reason: str,
        status_reason: str,
        log_line: str | None = None,
    ) -> SendOutcome:
        """Stop the account's sends until it is re-connected: ``needs_reauth``, this row parked. Only
        while the account holds the token that failed: a new token stored meanwhile gets the row."""
        with session_scope(self._sessions) as session:
            flagged = accounts_repo.flag_if_token(
                session,
                job.tenant_id,
                job.account_id,
                leased.token_blob,
                "needs_reauth",
                status_reason[:255],
            )
            if flagged:
                ledger.finish(
                    session,
                    job.tenant_id,
                    leased.row_id,
                    status="parked",
                    error_code=reason,
                    error_message=error.message,
                )
                self._quota_back(session, job, leased)
                self._log_leased(session, job, leased, "parked", reason, error.message)
        if not flagged:
            logger.info("a rejected token was replaced meanwhile: the message is retried with the new one")
            return self._defer(job, leased, 1, "token_replaced", "the account holds a new token")
        cache_keys.invalidate_account(self._cache, job.tenant_id, job.account_id, leased.ig_user_id)
        if log_line is not None:
            extra = {"reason": reason, "outbound_id": leased.row_id, "error": str(error)}
            logger.error(log_line, extra=extra)
        self._recheck_parked(job)
        return SendOutcome("parked", reason)

    def _finish(
        self, job: SendJob, leased: _Leased, status: str, reason: str, error: GraphError
    ) -> SendOutcome:
        with session_scope(self._sessions) as session:
            ledger.finish(
                session,
                job.tenant_id,
                leased.row_id,
                status=status,
                error_code=reason,
                error_message=error.message,
            )
            self._quota_back(session, job, leased)
            self._log_leased(session, job, leased, status, reason, error.message)
        return SendOutcome(status, reason)

    # -- logs --------------------------------------------------------------------------------------

    def _log_leased(
        self, session: Session, job: SendJob, leased: _Leased, status: str, reason: str | None, detail: str
    ) -> None:
        _write_logs(session, [_leased_logs(job, leased, status, reason, detail)])

    def _log(
        self, session: Session, row: OutboundMessage, status: str, reason: str, detail: str = ""
    ) -> None:
        log_row_outcome(session, row, status, reason, detail)


@dataclass(frozen=True)
class SentUnsettled:
    """A send that went out, its row still ``sending`` (``SendService.settle_sent``)."""

    job: SendJob
    leased: _Leased
    result: GraphResult


@dataclass(frozen=True)
class _OutcomeLogs:
    """A send outcome's log rows: one ``reply_logs`` row and one ``automation_logs`` decision."""

    reply: logs_repo.Reply
    decision: logs_repo.EventDecisions


def _leased_logs(job: SendJob, leased: _Leased, status: str, reason: str | None, detail: str) -> _OutcomeLogs:
    message = leased.payload.get("message")
    text = message.get("text") if isinstance(message, dict) else message
    return _outcome_logs(
        job.tenant_id,
        job.account_id,
        automation_id=leased.automation_id,
        row_id=leased.row_id,
        kind=leased.kind,
        recipient_id=leased.recipient_id,
        comment_id=leased.comment_id,
        event_key=None,
        status=status,
        reason=reason,
        detail=detail,
        text=text if isinstance(text, str) else None,
    )


def log_row_outcome(
    session: Session, row: OutboundMessage, status: str, reason: str, detail: str = ""
) -> None:
    """The log rows of an outcome decided from the ledger row alone (a lost worker, the sweeper)."""
    logs = _outcome_logs(
        row.tenant_id,
        row.account_id,
        automation_id=row.automation_id,
        row_id=row.id,
        kind=row.kind,
        recipient_id=row.recipient_id,
        comment_id=row.comment_id,
        event_key=row.event_key,
        status=status,
        reason=reason,
        detail=detail,
    )
    _write_logs(session, [logs])


def _outcome_logs(
    tenant_id: str,
    account_id: str,
    *,
    automation_id: str | None,
    row_id: int,
    kind: str,
    recipient_id: str | None,
    comment_id: str | None,
    event_key: str | None,
    status: str,
    reason: str | None,
    detail: str,
    text: str | None = None,
) -> _OutcomeLogs:
    """A send outcome is one ``reply_logs`` row and one ``automation_logs`` decision, together."""
    reply = logs_repo.Reply(
        tenant_id,
        account_id,
        automation_id=automation_id,
        outbound_message_id=row_id,
        kind=kind,
        status=status,
        recipient_id=recipient_id,
        comment_id=comment_id,
        text=text,
        error_code=reason,
        detail=detail or None,
    )
    decision = logs_repo.Decision(
        automation_id, status, reason, f"{kind} #{row_id}: {detail}" if detail else f"{kind} #{row_id}"
    )
    return _OutcomeLogs(reply, logs_repo.EventDecisions(tenant_id, account_id, event_key, [decision]))


def _write_logs(session: Session, outcomes: Sequence[_OutcomeLogs]) -> None:
    """The outcomes' log rows in three statements however many (``logs`` repository)."""
    logs_repo.replies(session, [o.reply for o in outcomes])
    logs_repo.automations_of_events(session, [o.decision for o in outcomes])


def release_if_active(
    sessions: sessionmaker[Session], tenant_id: str, account_id: str, publisher: QueuePublisher
) -> int:
    """After a park has committed: if the account is active again (a reconnect raced the park), release
    its parked rows. A fresh transaction, so it sees every commit made before it."""
    with session_scope(sessions) as session:
        account = accounts_repo.get(session, tenant_id, account_id)
        if account is None or account.status != "active":
            return 0
        return release_parked(session, tenant_id, account_id, publisher, recheck_after_commit=False)


def release_parked(
    session: Session,
    tenant_id: str,
    account_id: str,
    publisher: QueuePublisher,
    *,
    recheck_after_commit: bool = True,
) -> int:
    """Queue an account's parked messages again (call it when the account is re-connected).

    The rows move to ``queued`` in the caller's transaction; the send jobs are published only after
    that transaction commits (a job published earlier could reach a sender that still sees ``parked``).
    Returns the number of rows released. Messages whose window has passed meanwhile are skipped by the
    sender with the reason. With ``recheck_after_commit`` the release runs once more after the commit,
    in a fresh transaction: a row parked by a worker whose commit this transaction's snapshot missed is
    released then (the worker's own re-check covers the opposite order).
    """
    rows = ledger.list_by_status(session, tenant_id, account_id, ["parked"], limit=10_000)
    moved = set(ledger.requeue(session, tenant_id, [row.id for row in rows], from_status="parked"))
    jobs: dict[str, list[str]] = {}
    for row in rows:
        if row.id in moved:
            body = SendJob(tenant_id=tenant_id, account_id=account_id, outbound_id=row.id).to_json()
            jobs.setdefault(sends_queue(row.priority), []).append(body)
            logs_repo.automation(
                session,
                tenant_id,
                account_id,
                automation_id=row.automation_id,
                event_key=row.event_key,
                action="queued",
                reason="released",
                detail=f"{row.kind} #{row.id} released after reconnect",
            )
    bind = session.get_bind()

    def publish_and_recheck() -> None:
        for queue, bodies in jobs.items():
            publisher.publish(queue, bodies)
        if recheck_after_commit:
            try:
                release_if_active(sessionmaker(bind=bind), tenant_id, account_id, publisher)
            except Exception as error:  # the ledger sweeper releases what is left on its next run
                logger.warning("parked rows not re-checked after the release", extra={"error": str(error)})

    if jobs or recheck_after_commit:
        after_commit(session, publish_and_recheck)
    return len(moved)


class _LeaseConflictError(Exception):
    """A batch's lease owned fewer rows than it chose: rolled back, each job goes its own way."""


# A row and its account: the ORM's (one job's lease) or the plain rows of a batch's lease.
_Row = OutboundMessage | ledger.SendRow
_Account = InstagramAccount | ledger.SendAccount


def _decide(row: _Row, account: _Account | None, now: datetime) -> SendDecision:
    return decide_send(
        status=row.status,
        error_code=row.error_code,
        kind=row.kind,
        not_after=_parse_time(row.payload.get("not_after")),
        account_status=account.status if account else None,
        account_status_reason=account.status_reason if account else None,
        now=now,
    )


def _leased(row: _Row, account: _Account, quota_period: str | None) -> _Leased:
    """The lease of a row just owned (its ``attempts`` read before ``start_send`` counted one)."""
    return _Leased(
        row_id=row.id,
        kind=row.kind,
        automation_id=row.automation_id,
        payload=dict(row.payload),
        comment_id=row.comment_id,
        recipient_id=row.recipient_id,
        priority=row.priority,
        attempts=row.attempts + 1,
        ig_user_id=account.ig_user_id,
        token_blob=account.access_token_encrypted,
        budget=account.hourly_send_budget,
        quota_period=quota_period if quota_period and row.kind in usage_repo.DM_KINDS else None,
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
