"""Retention of the ledgers (inbound events, sends, contacts): archived first, then deleted in chunks
by the plan's retention; pending sends are kept. On SQLite here; on MariaDB in
``tests/integration/test_jobs_retention_ledgers_mariadb.py`` (same scenario)."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from replyflow.db.engine import session_factory
from replyflow.db.models import Contact, InboundEvent, OutboundMessage
from replyflow.services.jobs.archive import restore, run_archive
from replyflow.services.jobs.common import Deadline
from replyflow.services.jobs.retention import run_retention
from tests.unit.test_jobs_fakes import MemoryStore, add_tenant

NOW = datetime(2026, 3, 20, 10, 0)
OLD = datetime(2026, 3, 5, 12, 0)  # past the free plan's 7 days, within the pro plan's 30
NEW = datetime(2026, 3, 18, 12, 0)


def seed(session: Session, tenant_id: str) -> None:
    for i, at in enumerate((OLD, OLD + timedelta(hours=1), NEW)):
        session.add(
            InboundEvent(
                tenant_id=tenant_id, account_id="acct", event_key=f"mid-{i}", kind="message", received_at=at
            )
        )
        session.add(
            Contact(
                tenant_id=tenant_id,
                account_id="acct",
                igsid=f"u{i}",
                username="x",
                created_at=OLD,
                updated_at=at,
            )
        )
    for key, at, status in (("s-old", OLD, "sent"), ("q-old", OLD, "parked"), ("s-new", NEW, "sent")):
        session.add(
            OutboundMessage(
                tenant_id=tenant_id,
                account_id="acct",
                kind="dm",
                dedupe_key=key,
                recipient_id="u0",
                payload={"text": f"secret text {key}"},
                status=status,
                created_at=at,
                updated_at=at,
            )
        )


def counts(sessions: sessionmaker[Session], tenant_id: str) -> dict[str, int]:
    with sessions() as session:
        return {
            model.__tablename__: int(
                session.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant_id))
                or 0
            )
            for model in (InboundEvent, OutboundMessage, Contact)
        }


def scenario(url: str) -> None:
    sessions = session_factory(url)
    free, pro = f"t-free-{secrets.token_hex(3)}", f"t-pro-{secrets.token_hex(3)}"
    with sessions() as session:
        add_tenant(session, free, "free")
        add_tenant(session, pro, "pro")
        seed(session, free)
        seed(session, pro)
        session.commit()
    every = {"inbound_events": 3, "outbound_messages": 3, "contacts": 3}
    store = MemoryStore()

    unarchived = run_retention(sessions, now=NOW, deadline=Deadline.unlimited(), tenant_ids=[free, pro])
    assert unarchived.counts["rows_deleted"] == 0
    assert unarchived.counts["rows_kept_unarchived"] == 5  # 2 events, 1 settled send, 2 contacts
    assert counts(sessions, free) == every

    run_archive(sessions, store, now=NOW, deadline=Deadline.unlimited(), tenant_ids=[free, pro])
    result = run_retention(
        sessions, now=NOW, deadline=Deadline.unlimited(), chunk_size=1, tenant_ids=[free, pro]
    )
    assert result.details["deleted_per_tenant"][free] == {
        "inbound_events": 2,
        "outbound_messages": 1,
        "contacts": 2,
        "kept_unarchived": 0,
    }
    assert result.counts["chunks"] == 5
    assert counts(sessions, free) == {"inbound_events": 1, "outbound_messages": 2, "contacts": 1}
    assert counts(sessions, pro) == every  # 30 days: nothing of the pro tenant expired
    with sessions() as session:
        kept = sorted(
            session.scalars(select(OutboundMessage.dedupe_key).where(OutboundMessage.tenant_id == free))
        )
    assert kept == ["q-old", "s-new"]  # the parked send waits for its outcome

    restored = list(restore(store, free, date(2026, 3, 1), date(2026, 3, 12)))
    by_table: dict[str, int] = {}
    for item in restored:
        by_table[item.table] = by_table.get(item.table, 0) + 1
    assert by_table == {"inbound_events": 2, "outbound_messages": 2, "contacts": 2}
    events = [r.row for r in restored if r.table == "inbound_events"]
    assert {"received_at", "event_key"} <= set(events[0])  # real column names in the archive
    sends = {r.row["dedupe_key"]: r.row for r in restored if r.table == "outbound_messages"}
    assert sends["s-old"]["payload"] == {"text": "secret text s-old"}


def test_ledgers_are_archived_then_pruned_by_plan_retention_on_sqlite(sqlite_url: str) -> None:
    scenario(sqlite_url)
