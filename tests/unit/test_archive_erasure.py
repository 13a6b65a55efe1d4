"""Meta's data deletion reaches the archive: archived objects (a local directory, S3 on moto) are
rewritten without the user's rows, other rows and restore keep working, a crash mid-way converges."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.archive_store import DirectoryArchiveStore, S3ArchiveStore
from replyflow.db.engine import session_factory
from replyflow.db.models import (
    ArchiveFile,
    AutomationLog,
    Contact,
    DataDeletionRequest,
    InboundEvent,
    InstagramAccount,
    OutboundMessage,
    ReplyLog,
)
from replyflow.db.repositories import meta_callbacks as repo
from replyflow.ports import ArchiveStore
from replyflow.services.jobs.archive import restore, run_archive
from replyflow.services.jobs.archive_erasure import Erasure, erase_rows, run_archive_erasure, user_hash
from replyflow.services.jobs.common import Deadline
from tests.unit.test_jobs_fakes import add_tenant

NOW = datetime(2026, 3, 20, 10, 0)
DAY = datetime(2026, 3, 1, 9, 0)  # expired for a free tenant (7 days) at NOW
USER = "17841499990000001"
OTHER = "17841499990000002"


def _conversation(session: Session, tenant_id: str, account_id: str, igsid: str, key: str) -> None:
    session.add(Contact(tenant_id=tenant_id, account_id=account_id, igsid=igsid, updated_at=DAY))
    session.add(
        InboundEvent(
            tenant_id=tenant_id, account_id=account_id, event_key=key, kind="comment", received_at=DAY
        )
    )
    session.add(
        AutomationLog(
            tenant_id=tenant_id, account_id=account_id, event_key=key, action="queued", created_at=DAY
        )
    )
    session.add(
        OutboundMessage(
            tenant_id=tenant_id,
            account_id=account_id,
            kind="dm",
            dedupe_key=key,
            recipient_id=igsid,
            event_key=key,
            payload={"text": "hello", "recipient": {"id": igsid}},
            status="sent",
            created_at=DAY,
        )
    )
    session.add(
        ReplyLog(
            tenant_id=tenant_id,
            account_id=account_id,
            kind="dm",
            status="sent",
            recipient_id=igsid,
            text=f"hi {key}",
            created_at=DAY,
        )
    )


@pytest.fixture
def sessions(sqlite_url: str) -> sessionmaker[Session]:
    factory = session_factory(sqlite_url)
    with factory() as session:
        add_tenant(session, "t-a", "free")
        add_tenant(session, "t-b", "free")
        # The user is a contact in t-a (with another contact beside), and a connected account in t-b.
        _conversation(session, "t-a", "acct-a", USER, "evt-user")
        _conversation(session, "t-a", "acct-a", OTHER, "evt-other")
        session.add(
            InstagramAccount(
                id="acct-user",
                tenant_id="t-b",
                ig_user_id=USER,
                username="the.user",
                access_token_encrypted=b"",
            )
        )
        _conversation(session, "t-b", "acct-user", OTHER, "evt-of-the-users-account")
        _conversation(session, "t-b", "acct-b", OTHER, "evt-b-other")
        session.commit()
    return factory


@pytest.fixture
def directory_store(tmp_path: Path) -> DirectoryArchiveStore:
    return DirectoryArchiveStore(tmp_path / "archive")


@pytest.fixture
def s3_store() -> Iterator[S3ArchiveStore]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="archive")
        yield S3ArchiveStore(client, "archive", prefix="logs")


def _request_deletion(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        repo.record_deletion(
            session, code="c0de", user_hash=user_hash(USER), rows_deleted=0, now=NOW, pending=True
        )
        session.commit()


def _restored(store: ArchiveStore, tenant_id: str) -> list[dict]:
    day = DAY.date()
    return [{"table": r.table, **r.row} for r in restore(store, tenant_id, day, day)]


def _names(rows: list[dict], needle: str) -> list[dict]:
    return [r for r in rows if needle in str(r.values())]


@pytest.mark.parametrize("store_name", ["directory_store", "s3_store"])
def test_a_deletion_rewrites_the_archived_objects_without_the_users_rows(
    sessions: sessionmaker[Session], store_name: str, request: pytest.FixtureRequest
) -> None:
    store: ArchiveStore = request.getfixturevalue(store_name)
    archived = run_archive(sessions, store, now=NOW, deadline=Deadline.unlimited())
    assert archived.counts["rows_archived"] == 20
    before_a = _restored(store, "t-a")
    assert _names(before_a, USER), "the user is in the archive before the deletion"
    _request_deletion(sessions)

    result = run_archive_erasure(sessions, store, now=NOW, deadline=Deadline.unlimited())

    # t-a: the user's contact, send and reply log, and the event and decision of that send (5 rows);
    # t-b: everything the user's own account recorded (5 rows).
    assert result.counts["rows_erased"] == 10
    assert result.counts["deletions_completed"] == 1
    after_a, after_b = _restored(store, "t-a"), _restored(store, "t-b")
    assert not _names(after_a, USER)
    assert not _names(after_b, USER)
    assert not [r for r in after_a if r.get("event_key") == "evt-user"]
    assert not [r for r in after_b if r.get("account_id") == "acct-user"]
    assert len(_names(after_a, OTHER)) == 3
    assert len(after_a) == 5
    assert {r["account_id"] for r in after_b} == {"acct-b"}
    assert len(after_b) == 5
    with sessions() as session:
        status = session.scalar(
            select(DataDeletionRequest.status).where(DataDeletionRequest.confirmation_code == "c0de")
        )
        recorded = sum(f.row_count for f in session.scalars(select(ArchiveFile)))
    assert status == "completed"
    assert recorded == 10
    # A second run has nothing pending; the archive job still sees every day as archived.
    assert (
        run_archive_erasure(sessions, store, now=NOW, deadline=Deadline.unlimited()).counts["rows_erased"]
        == 0
    )
    again = run_archive(sessions, store, now=NOW, deadline=Deadline.unlimited())
    assert again.counts["rows_archived"] == 0


def test_a_crash_after_rewriting_an_object_converges_on_the_next_run(
    sessions: sessionmaker[Session], directory_store: DirectoryArchiveStore
) -> None:
    run_archive(sessions, directory_store, now=NOW, deadline=Deadline.unlimited())
    _request_deletion(sessions)

    class CrashOnManifest(DirectoryArchiveStore):
        def put(self, key: str, data: bytes) -> None:
            if key.endswith("manifest.json"):
                raise RuntimeError("crash before the manifest")
            super().put(key, data)

    crashing = CrashOnManifest(directory_store.root)
    with pytest.raises(RuntimeError):
        run_archive_erasure(sessions, crashing, now=NOW, deadline=Deadline.unlimited())
    result = run_archive_erasure(sessions, directory_store, now=NOW, deadline=Deadline.unlimited())
    assert result.counts["deletions_completed"] == 1
    assert not _names(_restored(directory_store, "t-a"), USER)
    assert len(_restored(directory_store, "t-a")) == 5


def test_rows_sharing_an_event_with_the_users_rows_go_with_them() -> None:
    erasure = Erasure(frozenset({user_hash(USER)}), {})
    rows = {
        "reply_logs": [{"id": 1, "account_id": "a", "recipient_id": USER, "event_key": None}],
        "automation_logs": [
            {"id": 2, "account_id": "a", "event_key": "k", "detail": None},
            {"id": 3, "account_id": "a", "event_key": "k2", "detail": None},
        ],
        "outbound_messages": [{"id": 4, "account_id": "a", "event_key": "k", "payload": {"to": USER}}],
    }
    kept = erase_rows(erasure, "t", rows)
    assert kept == {
        "reply_logs": [],
        "automation_logs": [rows["automation_logs"][1]],
        "outbound_messages": [],
    }


def test_the_callback_leaves_the_request_pending_only_when_an_archive_exists(
    sessions: sessionmaker[Session], directory_store: DirectoryArchiveStore
) -> None:
    with sessions() as session:
        assert not repo.any_archive_files(session)
    run_archive(sessions, directory_store, now=NOW, deadline=Deadline.unlimited())
    with sessions() as session:
        assert repo.any_archive_files(session)


def test_a_run_stopped_by_its_deadline_leaves_the_request_pending(
    sessions: sessionmaker[Session], directory_store: DirectoryArchiveStore
) -> None:
    run_archive(sessions, directory_store, now=NOW, deadline=Deadline.unlimited())
    _request_deletion(sessions)
    result = run_archive_erasure(sessions, directory_store, now=NOW, deadline=Deadline(0))
    assert result.stopped_early
    with sessions() as session:
        assert repo.pending_deletions(session) == [(1, user_hash(USER))]
