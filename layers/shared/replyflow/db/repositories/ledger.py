"""The two ledgers: ``inbound_events`` (what we received) and ``outbound_messages`` (what we send).

Invariants:
- a reservation is an INSERT against a unique key, never a read-then-write: ``record_event`` and
  ``add_outbound`` return False/None when another worker already holds the key. The key is a
  ``dedupe_claims`` row (never partitioned), inserted with ``INSERT IGNORE`` (``OR IGNORE`` on
  SQLite) before the ledger row (partitioned by time on MySQL), which is written only when the claim
  was inserted: a refused claim is no error, so no SAVEPOINT is needed and the caller's transaction
  goes on. A claim held by a transaction still open makes the INSERT wait for it, as the unique key
  always did;
- ``record_events`` claims the events of a batch (one transaction) in three round trips: a read of
  the keys already claimed, one multi-row ``INSERT IGNORE`` of the others and one multi-row INSERT of
  their ledger rows. The read decides nothing: if the INSERT inserts fewer claims than it was given,
  a concurrent transaction took one of them after the read (which one is not known), and
  ``ClaimRaceError`` tells the caller to roll back and claim one event at a time;
- a send is owned through ``start_send``: one conditional UPDATE moves a row from a sendable status to
  ``sending``; only the worker whose UPDATE changed the row may call the Graph API for it. A row left
  in ``sending`` longer than the lease belongs to a worker that died mid-call: the request may have
  gone out, so ``settle_stale`` marks it ``unknown`` instead of sending again;
- terminal statuses are ``sent``, ``skipped``, ``unknown`` and ``failed`` with a permanent error;
  ``failed`` with ``error_code == "transient"`` stays sendable (the message waits in the queue or DLQ).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, String, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from replyflow.clock import utcnow
from replyflow.db.models import DedupeClaim, InboundEvent, InstagramAccount, OutboundMessage, Plan, Tenant
from replyflow.db.repositories._upsert import insert_ignore, insert_ignore_many
from replyflow.domain.lifecycle import TERMINAL_STATUSES, TRANSIENT_ERROR, OutboundStatus
from replyflow.errors import ReplyflowError

SENDABLE = (OutboundStatus.QUEUED, OutboundStatus.DEFERRED)
INBOUND_CLAIM = "inbound"
TERMINAL = tuple(sorted(TERMINAL_STATUSES))


def record_event(
    session: Session,
    tenant_id: str,
    account_id: str,
    event_key: str,
    *,
    kind: str,
    occurred_at: datetime | None,
    sender_id: str | None = None,
) -> bool:
    """Record an inbound event; False when it was already recorded (a duplicate delivery)."""
    at = _claim(session, tenant_id, account_id, INBOUND_CLAIM, event_key[:255])
    if at is None:
        return False
    session.add(
        InboundEvent(
            received_at=at,
            tenant_id=tenant_id,
            account_id=account_id,
            event_key=event_key[:255],
            kind=kind,
            occurred_at=occurred_at,
            sender_id=sender_id[:64] if sender_id else None,
        )
    )
    return True


class ClaimRaceError(ReplyflowError):
    """A claim of the batch was taken by a concurrent transaction between the read and the INSERT."""

    code = "claim_race"
    status = 503


@dataclass(frozen=True)
class InboundClaim:
    """One inbound event of a batch for ``record_events``."""

    tenant_id: str
    account_id: str
    event_key: str
    kind: str
    occurred_at: datetime | None
    sender_id: str | None = None

    @property
    def claim(self) -> tuple[str, str, str]:
        return (self.tenant_id, self.account_id, self.event_key[:255])


def record_events(session: Session, events: Sequence[InboundClaim]) -> list[bool]:
    """Record a batch's inbound events; for each, True when recorded here, False when it was recorded
    before or earlier in ``events`` (a duplicate delivery). ``ClaimRaceError`` when a concurrent
    transaction claimed one of them meanwhile: roll back and record them one by one."""
    claimed = _claimed(session, [event.claim for event in events])
    fresh: dict[tuple[str, str, str], InboundClaim] = {}
    for event in events:
        if event.claim not in claimed and event.claim not in fresh:
            fresh[event.claim] = event
    if fresh:
        at = utcnow()
        claims = [
            {"tenant_id": t, "account_id": a, "kind": INBOUND_CLAIM, "claim_key": k, "claimed_at": at}
            for t, a, k in sorted(fresh)  # one order for every batch: fewer lock waits between them
        ]
        table: Any = DedupeClaim.__table__
        if insert_ignore_many(session, table, claims) != len(claims):
            raise ClaimRaceError("an inbound claim of the batch was taken concurrently")
        rows = [
            {
                "received_at": at,
                "tenant_id": e.tenant_id,
                "account_id": e.account_id,
                "event_key": e.event_key[:255],
                "kind": e.kind,
                "occurred_at": e.occurred_at,
                "sender_id": e.sender_id[:64] if e.sender_id else None,
            }
            for e in fresh.values()
        ]
        ledger_table: Any = InboundEvent.__table__
        session.execute(insert(ledger_table), rows)
    firsts = {id(event) for event in fresh.values()}
    return [id(event) in firsts for event in events]


def _claimed(session: Session, claims: Sequence[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Which (tenant, account, event key) inbound claims are committed already (one SELECT)."""
    if not claims:
        return set()
    keys = sorted(set(claims))
    match = or_(
        *(
            and_(
                DedupeClaim.tenant_id == t,
                DedupeClaim.account_id == a,
                DedupeClaim.kind == INBOUND_CLAIM,
                DedupeClaim.claim_key == k,
            )
            for t, a, k in keys
        )
    )
    stmt = select(DedupeClaim.tenant_id, DedupeClaim.account_id, DedupeClaim.claim_key).where(match)
    return {(t, a, k) for t, a, k in session.execute(stmt)}


@dataclass(frozen=True)
class ReservedSend:
    """The ``outbound_messages`` row ``add_outbound`` inserted."""

    id: int


def add_outbound(
    session: Session,
    tenant_id: str,
    account_id: str,
    *,
    automation_id: str | None,
    kind: str,
    dedupe_key: str,
    comment_id: str | None,
    recipient_id: str | None,
    event_key: str | None,
    payload: dict[str, Any],
    priority: str,
    status: str,
    error_code: str | None = None,
) -> ReservedSend | None:
    """Reserve one send; None when (tenant, account, kind, dedupe_key) is already taken. The row is
    inserted through SQLAlchemy Core (no ORM object: the caller needs its id only)."""
    at = _claim(session, tenant_id, account_id, kind, dedupe_key[:255])
    if at is None:
        return None
    table: Any = OutboundMessage.__table__
    result: Any = session.execute(
        insert(table).values(
            tenant_id=tenant_id,
            account_id=account_id,
            automation_id=automation_id,
            kind=kind,
            dedupe_key=dedupe_key[:255],
            comment_id=comment_id,
            recipient_id=recipient_id,
            event_key=event_key[:255] if event_key else None,
            payload=payload,
            priority=priority,
            status=status,
            error_code=error_code,
            created_at=at,
            updated_at=at,
        )
    )
    return ReservedSend(int(result.inserted_primary_key[0]))  # the caller publishes the row's id


def _claim(session: Session, tenant_id: str, account_id: str, kind: str, key: str) -> datetime | None:
    """Insert the claim; its time, or None when the key is already claimed. The ledger row ages from
    the same instant (retention finds it from the claim, one partition)."""
    at = utcnow()
    values = {
        "tenant_id": tenant_id,
        "account_id": account_id,
        "kind": kind,
        "claim_key": key,
        "claimed_at": at,
    }
    table: Any = DedupeClaim.__table__
    return at if insert_ignore(session, table, values) else None


def get_outbound(session: Session, tenant_id: str, outbound_id: int) -> OutboundMessage | None:
    return session.scalar(
        select(OutboundMessage).where(
            OutboundMessage.tenant_id == tenant_id, OutboundMessage.id == outbound_id
        )
    )


def start_send(session: Session, tenant_id: str, outbound_id: int, *, now: datetime | None = None) -> bool:
    """Take ownership of a row for one send attempt (atomic). True when this worker owns it now."""
    now = now or utcnow()
    result = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.tenant_id == tenant_id,
            OutboundMessage.id == outbound_id,
            _startable(),
        )
        .values(status="sending", attempts=OutboundMessage.attempts + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


class SendRow(NamedTuple):
    """The columns of an ``outbound_messages`` row a batch's lease reads (no ORM object)."""

    id: int
    tenant_id: str
    account_id: str
    kind: str
    status: str
    error_code: str | None
    automation_id: str | None
    payload: dict[str, Any]
    comment_id: str | None
    recipient_id: str | None
    priority: str
    attempts: int


class SendAccount(NamedTuple):
    """The columns of the row's ``instagram_accounts`` row a batch's lease reads."""

    id: str
    status: str
    status_reason: str | None
    ig_user_id: str
    access_token_encrypted: bytes
    hourly_send_budget: int


class OutboundForSend(NamedTuple):
    """A row a batch may send, its account, and its tenant's plan's monthly DM quota."""

    row: SendRow
    account: SendAccount
    dm_quota: int


# A row of a batch, by its tenant and id: a batch's jobs may be of several tenants of one database.
SendKey = tuple[str, int]


# The batch's statements are built once per shape (``functools.lru_cache``: per number of tenants
# and of new message ids; on first use, nothing at import) with bind parameters, the id lists
# ``expanding`` ones: SQLAlchemy compiles each once per dialect and afterwards only binds values,
# where building a statement per call cost most of the lease's CPU.
# They name the tables' Core columns, so no ORM loading or bulk-update machinery runs either.
_OUT: Any = OutboundMessage.__table__


def _keyed(tenants: int) -> ColumnElement[bool]:
    """The rows of a batch's keys for ``tenants`` tenants: ``tenant_id = p_t<k> AND id IN p_ids<k>``
    for each, OR-ed, which the ``(tenant_id, id)`` index answers range by range (a row value,
    ``(tenant_id, id) IN (...)``, took 2-4x as long on MariaDB in the bench)."""
    return or_(
        *(
            and_(
                _OUT.c.tenant_id == bindparam(f"p_t{k}"),
                _OUT.c.id.in_(bindparam(f"p_ids{k}", expanding=True)),
            )
            for k in range(tenants)
        )
    )


def _key_params(keys: Sequence[SendKey]) -> tuple[int, dict[str, Any]]:
    """How many tenants ``keys`` hold (the shape of ``_keyed``), and its binds: each tenant's ids,
    tenants in sorted order."""
    by_tenant: dict[str, set[int]] = {}
    for tenant_id, row_id in keys:
        by_tenant.setdefault(tenant_id, set()).add(row_id)
    params: dict[str, Any] = {}
    for k, (tenant_id, ids) in enumerate(sorted(by_tenant.items())):
        params[f"p_t{k}"], params[f"p_ids{k}"] = tenant_id, sorted(ids)
    return len(by_tenant), params


@lru_cache(maxsize=16)
def _for_send_stmt(tenants: int) -> Any:
    acc: Any = InstagramAccount.__table__
    tenant: Any = Tenant.__table__
    plan: Any = Plan.__table__
    row_cols = [_OUT.c[name] for name in SendRow._fields]
    acc_cols = [acc.c[name] for name in SendAccount._fields]
    return (
        select(*row_cols, *acc_cols, plan.c.monthly_dm_quota)
        .select_from(
            _OUT.join(acc, and_(acc.c.tenant_id == _OUT.c.tenant_id, acc.c.id == _OUT.c.account_id))
            .join(tenant, tenant.c.id == _OUT.c.tenant_id)
            .join(plan, plan.c.code == tenant.c.plan_code)
        )
        .where(_keyed(tenants))
    )


def outbound_for_send(session: Session, keys: Sequence[SendKey]) -> list[OutboundForSend]:
    """The rows of ``keys`` (each of its own tenant) with their accounts and their tenants' DM
    quotas, in one SELECT (a consistent read, no lock: ``start_sends`` owns a row only if it is still
    startable). Plain rows, not ORM objects: nothing enters the session's identity map."""
    if not keys:
        return []
    n_row, n_acc = len(SendRow._fields), len(SendAccount._fields)
    tenants, params = _key_params(keys)
    rows = session.execute(_for_send_stmt(tenants), params)
    return [
        OutboundForSend(SendRow(*r[:n_row]), SendAccount(*r[n_row : n_row + n_acc]), int(r[n_row + n_acc]))
        for r in rows
    ]


@lru_cache(maxsize=16)
def _start_sends_stmt(tenants: int) -> Any:
    startable = or_(
        _OUT.c.status.in_(SENDABLE),
        and_(_OUT.c.status == "failed", _OUT.c.error_code == TRANSIENT_ERROR),
    )
    return (
        update(_OUT)
        .where(_keyed(tenants), startable)
        .values(status="sending", attempts=_OUT.c.attempts + 1, updated_at=bindparam("p_now"))
    )


def start_sends(session: Session, keys: Sequence[SendKey], *, now: datetime | None = None) -> int:
    """``start_send`` for the rows of ``keys`` (of one tenant or several) in one UPDATE (the same
    condition, ``_startable``): how many this worker owns now."""
    if not keys:
        return 0
    tenants, params = _key_params(keys)
    result: Any = session.execute(_start_sends_stmt(tenants), {**params, "p_now": now or utcnow()})
    return int(result.rowcount)


def _startable() -> ColumnElement[bool]:
    """A row a send may own: sendable, or failed transiently (an inline retry)."""
    return or_(
        OutboundMessage.status.in_(SENDABLE),
        and_(OutboundMessage.status == "failed", OutboundMessage.error_code == TRANSIENT_ERROR),
    )


def settle_stale(
    session: Session, tenant_id: str, outbound_id: int, *, lease_seconds: int, now: datetime | None = None
) -> bool:
    """Mark a row stuck in ``sending`` past the lease as ``unknown``; True when this call did it."""
    now = now or utcnow()
    result = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.tenant_id == tenant_id,
            OutboundMessage.id == outbound_id,
            OutboundMessage.status == "sending",
            OutboundMessage.updated_at < now - timedelta(seconds=lease_seconds),
        )
        .values(status="unknown", error_code="worker_lost", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def finish(
    session: Session,
    tenant_id: str,
    outbound_id: int,
    *,
    status: str,
    error_code: str | None = None,
    error_message: str | None = None,
    graph_message_id: str | None = None,
    sent_at: datetime | None = None,
    uncount_attempt: bool = False,
) -> None:
    """Settle a row. ``uncount_attempt`` gives back the attempt ``start_send`` counted (a deferral is
    not an attempt: it must not eat into the retry budget)."""
    values: dict[str, Any] = {
        "status": status,
        "error_code": error_code,
        "error_message": error_message[:1000] if error_message else None,
        "updated_at": utcnow(),
    }
    if graph_message_id is not None:
        values["graph_message_id"] = graph_message_id[:255]
    if sent_at is not None:
        values["sent_at"] = sent_at
    if uncount_attempt:
        values["attempts"] = OutboundMessage.attempts - 1
    session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.tenant_id == tenant_id, OutboundMessage.id == outbound_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


@lru_cache(maxsize=64)
def _finish_sent_stmt(tenants: int, known: int) -> Any:
    """The UPDATE of ``finish_sent`` for ``known`` new Graph message ids (one shape per count, so
    one compiled statement per count; a batch holds ten rows at most). Each id is matched alone in
    the CASE: an id is one row in its database, and the WHERE holds it to its tenant."""
    graph_id: Any = (
        case(
            *(
                (_OUT.c.id == bindparam(f"p_id{k}"), bindparam(f"p_mid{k}", type_=String))
                for k in range(known)
            ),
            else_=_OUT.c.graph_message_id,
        )
        if known
        else _OUT.c.graph_message_id
    )
    return (
        update(_OUT)
        .where(_keyed(tenants))
        .values(
            status="sent",
            error_code=None,
            error_message=None,
            updated_at=bindparam("p_now"),
            graph_message_id=graph_id,
            sent_at=bindparam("p_sent_at"),
        )
    )


def finish_sent(session: Session, message_ids: dict[SendKey, str | None], *, sent_at: datetime) -> None:
    """``finish(status="sent")`` for several rows (of one tenant or several) in one UPDATE: (tenant,
    row id) -> the Graph message id (None keeps the stored one)."""
    if not message_ids:
        return
    known = sorted((row_id, mid[:255]) for (_, row_id), mid in message_ids.items() if mid is not None)
    tenants, params = _key_params(list(message_ids))
    params.update(p_now=utcnow(), p_sent_at=sent_at)
    for k, (row_id, mid) in enumerate(known):
        params[f"p_id{k}"], params[f"p_mid{k}"] = row_id, mid
    session.execute(_finish_sent_stmt(tenants, len(known)), params)


def list_by_status(
    session: Session,
    tenant_id: str,
    account_id: str,
    statuses: Sequence[str],
    *,
    event_key: str | None = None,
    limit: int = 1000,
) -> list[OutboundMessage]:
    query = select(OutboundMessage).where(
        OutboundMessage.tenant_id == tenant_id,
        OutboundMessage.account_id == account_id,
        OutboundMessage.status.in_(list(statuses)),
    )
    if event_key is not None:
        query = query.where(OutboundMessage.event_key == event_key[:255])
    return list(session.scalars(query.order_by(OutboundMessage.id).limit(limit)))


def requeue(session: Session, tenant_id: str, outbound_ids: Sequence[int], *, from_status: str) -> list[int]:
    """Move rows from ``from_status`` back to ``queued``; the ids actually moved (a concurrent release
    cannot move the same row twice)."""
    moved = []
    for outbound_id in outbound_ids:
        result = session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.tenant_id == tenant_id,
                OutboundMessage.id == outbound_id,
                OutboundMessage.status == from_status,
            )
            .values(status="queued", error_code=None, error_message=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0):
            moved.append(outbound_id)
    return moved


def recent_send_times(
    session: Session, tenant_id: str, account_id: str, *, since: datetime, exclude_id: int | None = None
) -> list[datetime]:
    """When the account's sends of the window started at ``since`` went out: ``sent_at`` of sent rows,
    and the last change of rows that may have gone out (``sending`` in flight, ``unknown``)."""
    sent = select(OutboundMessage.sent_at).where(
        OutboundMessage.tenant_id == tenant_id,
        OutboundMessage.account_id == account_id,
        OutboundMessage.sent_at >= since,
        OutboundMessage.status == "sent",
    )
    maybe = select(OutboundMessage.updated_at).where(
        OutboundMessage.tenant_id == tenant_id,
        OutboundMessage.account_id == account_id,
        OutboundMessage.status.in_(("sending", "unknown")),
        OutboundMessage.updated_at >= since,
    )
    if exclude_id is not None:
        maybe = maybe.where(OutboundMessage.id != exclude_id)
    times = [t for t in session.scalars(sent) if t is not None]
    times.extend(t for t in session.scalars(maybe) if t is not None)
    return times


def settle_stale_row(
    session: Session, tenant_id: str, outbound_id: int, *, lease_seconds: int, now: datetime
) -> OutboundMessage | None:
    """``settle_stale`` returning the settled row (for its log lines), None when it was not stale."""
    if not settle_stale(session, tenant_id, outbound_id, lease_seconds=lease_seconds, now=now):
        return None
    return get_outbound(session, tenant_id, outbound_id)


def stale_before(
    session: Session, status: str, before: datetime, *, limit: int, after_id: int = 0
) -> list[OutboundMessage]:
    """Rows of every tenant in ``status`` not changed since ``before``, by id (the ledger sweeper: a
    platform job; each row carries its tenant, and every change it makes is keyed by tenant too)."""
    return list(
        session.scalars(
            select(OutboundMessage)
            .where(
                OutboundMessage.status == status,
                OutboundMessage.updated_at < before,
                OutboundMessage.id > after_id,
            )
            .order_by(OutboundMessage.id)
            .limit(limit)
        )
    )


def touch(
    session: Session, tenant_id: str, outbound_id: int, *, status: str, seen: datetime, now: datetime
) -> bool:
    """Stamp a row still in ``status`` and unchanged since ``seen``; True when this call did it (two
    sweepers, or a sweeper and a sender, cannot both act on the same version of the row)."""
    result = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.tenant_id == tenant_id,
            OutboundMessage.id == outbound_id,
            OutboundMessage.status == status,
            OutboundMessage.updated_at == seen,
        )
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def parked_on_active_accounts(session: Session, *, limit: int) -> list[tuple[str, str]]:
    """(tenant, account) pairs with parked rows although the account is active again. Driven from the
    active accounts (one probe of ``ix_outbound_tenant_account_status`` each): the parked rows of
    accounts that never reconnect pile up and are not scanned."""
    parked = (
        select(OutboundMessage.id)
        .where(
            OutboundMessage.tenant_id == InstagramAccount.tenant_id,
            OutboundMessage.account_id == InstagramAccount.id,
            OutboundMessage.status == "parked",
        )
        .exists()
    )
    stmt = (
        select(InstagramAccount.tenant_id, InstagramAccount.id)
        .where(InstagramAccount.status == "active", parked)
        .order_by(InstagramAccount.id)
        .limit(limit)
    )
    return [(tenant_id, account_id) for tenant_id, account_id in session.execute(stmt)]


def seen_event_keys(session: Session, tenant_id: str, account_id: str, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` the account's inbound ledger already holds."""
    if not keys:
        return set()
    return set(
        session.scalars(
            select(DedupeClaim.claim_key).where(
                DedupeClaim.tenant_id == tenant_id,
                DedupeClaim.account_id == account_id,
                DedupeClaim.kind == INBOUND_CLAIM,
                DedupeClaim.claim_key.in_(keys),
            )
        )
    )


def last_send_to(
    session: Session, tenant_id: str, account_id: str, *, automation_id: str, recipient_id: str
) -> datetime | None:
    """When ``automation_id`` last planned a send to this contact (any status): the processor's
    cooldown when Redis does not answer."""
    return session.scalar(
        select(func.max(OutboundMessage.created_at)).where(
            OutboundMessage.tenant_id == tenant_id,
            OutboundMessage.account_id == account_id,
            OutboundMessage.automation_id == automation_id,
            OutboundMessage.recipient_id == recipient_id,
        )
    )
