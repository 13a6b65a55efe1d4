"""Archive, retention and restore on SQLite with in-memory and moto-S3 stores (no sockets)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.archive_store import DirectoryArchiveStore, S3ArchiveStore
from replyflow.db.engine import session_factory
from replyflow.db.models import ArchiveFile, AutomationLog, ReplyLog
from replyflow.ports import ArchiveObjectMissingError
from replyflow.services.jobs.archive import (
    ArchiveVerificationError,
    encode_rows,
    manifest_key,
    restore,
    run_archive,
)
from replyflow.services.jobs.common import Deadline
from replyflow.services.jobs.retention import run_retention
from tests.unit.test_jobs_fakes import MemoryStore, add_logs, add_tenant

NOW = datetime(2026, 3, 20, 10, 0)


@pytest.fixture
def sessions(sqlite_url: str) -> sessionmaker[Session]:
    factory = session_factory(sqlite_url)
    with factory() as session:
        add_tenant(session, "t-free", "free")  # 7 days -> cutoff 2026-03-13 00:00
        add_tenant(session, "t-pro", "pro")  # 30 days -> cutoff 2026-02-18 00:00
        add_logs(session, "t-free", datetime(2026, 3, 1), 48, timedelta(hours=12))  # to 2026-03-24
        add_logs(session, "t-pro", datetime(2026, 2, 10), 30, timedelta(days=1))
        session.commit()
    return factory


def _count(sessions: sessionmaker[Session], model: type[ReplyLog] | type[AutomationLog], tenant: str) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant)) or 0


@pytest.fixture
def s3_store() -> Iterator[S3ArchiveStore]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="archive")
        yield S3ArchiveStore(client, "archive", prefix="logs")


def test_archive_layout_manifest_and_verified_records(
    sessions: sessionmaker[Session], s3_store: S3ArchiveStore
) -> None:
    result = run_archive(sessions, s3_store, now=NOW, deadline=Deadline.unlimited())
    # t-free: 2026-03-01 .. 03-12 (24 rows per table); t-pro: 2026-02-10 .. 02-17 (8 per table).
    assert result.counts["rows_archived"] == 2 * (24 + 8)
    assert result.details["archived_per_tenant"] == {"t-free": 48, "t-pro": 16}
    assert result.counts["partitions_archived"] == 12 + 8
    manifest = json.loads(s3_store.get(manifest_key("t-free", date(2026, 3, 1))))
    assert manifest["rows"] == {"automation_logs": 2, "reply_logs": 2}
    keys = [f["key"] for f in manifest["files"]]
    assert all(k.startswith("tenant=t-free/date=2026-03-01/") and k.endswith(".jsonl.gz") for k in keys)
    reply_file = next(f for f in manifest["files"] if f["table"] == "reply_logs")
    assert reply_file["key"].endswith(f"reply_logs-{reply_file['first_id']}-{reply_file['last_id']}.jsonl.gz")
    rows = [json.loads(line) for line in gzip.decompress(s3_store.get(reply_file["key"])).splitlines()]
    assert rows[0]["text"] == "reply 0 \u2728\nsecond line"
    assert rows[0]["created_at"].startswith("2026-03-01T00:00")
    with sessions() as session:
        assert session.scalar(select(func.sum(ArchiveFile.row_count))) == 64
    # Nothing deleted by the archive itself.
    assert _count(sessions, ReplyLog, "t-free") == 48


def test_retention_deletes_only_archived_expired_rows_and_reports_per_tenant(
    sessions: sessionmaker[Session],
) -> None:
    store = MemoryStore()
    unarchived = run_retention(sessions, now=NOW, deadline=Deadline.unlimited())
    assert unarchived.counts["rows_deleted"] == 0
    assert unarchived.counts["rows_kept_unarchived"] == 64

    run_archive(sessions, store, now=NOW, deadline=Deadline.unlimited())
    result = run_retention(sessions, now=NOW, deadline=Deadline.unlimited(), chunk_size=5)
    assert result.counts["rows_deleted"] == 64
    assert result.details["deleted_per_tenant"] == {
        "t-free": {"reply_logs": 24, "automation_logs": 24, "kept_unarchived": 0},
        "t-pro": {"reply_logs": 8, "automation_logs": 8, "kept_unarchived": 0},
    }
    assert result.counts["chunks"] > 10
    assert _count(sessions, ReplyLog, "t-free") == 24
    assert _count(sessions, AutomationLog, "t-pro") == 22
    with sessions() as session:
        oldest = session.scalar(select(func.min(ReplyLog.created_at)).where(ReplyLog.tenant_id == "t-free"))
    assert oldest == datetime(2026, 3, 13)

    restored = list(restore(store, "t-free", date(2026, 3, 1), date(2026, 3, 12)))
    assert len(restored) == 48
    assert len({(r.table, r.row["id"]) for r in restored}) == 48


def test_retention_without_archive_requirement_deletes_by_predicate(sessions: sessionmaker[Session]) -> None:
    result = run_retention(sessions, now=NOW, deadline=Deadline.unlimited(), require_archive=False)
    assert result.counts["rows_deleted"] == 64


def test_crash_before_verification_records_nothing_and_rerun_converges(
    sessions: sessionmaker[Session],
) -> None:
    class BrokenReads(MemoryStore):
        def get(self, key: str) -> bytes:
            raise ArchiveObjectMissingError(key)

    broken = BrokenReads()
    with pytest.raises(ArchiveObjectMissingError):
        run_archive(sessions, broken, now=NOW, deadline=Deadline.unlimited())
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(ArchiveFile)) == 0
    assert run_retention(sessions, now=NOW, deadline=Deadline.unlimited()).counts["rows_deleted"] == 0

    store = MemoryStore()
    store.objects = dict(broken.objects)  # what the crashed run left behind
    before = dict(store.objects)
    run_archive(sessions, store, now=NOW, deadline=Deadline.unlimited())
    # Deterministic objects: the re-run rewrote the same bytes under the same keys.
    assert {k: store.objects[k] for k in before} == before


def test_corrupted_object_fails_verification() -> None:
    class Corrupting(MemoryStore):
        def put(self, key: str, data: bytes) -> None:
            super().put(key, data if key.endswith(".json") else data[:-1] + b"x")

    store = Corrupting()
    entry_data = encode_rows(["id"], [(1,)], set())
    assert gzip.decompress(entry_data) == b'{"id":1}\n'
    from replyflow.services.jobs.archive import FileEntry, verify_file

    store.put("k.jsonl.gz", entry_data)
    entry = FileEntry("k.jsonl.gz", "reply_logs", 1, 1, 1, "0" * 64, len(entry_data))
    with pytest.raises(ArchiveVerificationError):
        verify_file(store, entry)


def test_archive_stops_at_the_deadline_and_resumes(sessions: sessionmaker[Session]) -> None:
    class Ticks(Deadline):
        def __init__(self, checks: int) -> None:
            super().__init__(None)
            self.left = checks

        def expired(self) -> bool:
            self.left -= 1
            return self.left < 0

    store = MemoryStore()
    first = run_archive(sessions, store, now=NOW, deadline=Ticks(4))
    assert first.stopped_early
    second = run_archive(sessions, store, now=NOW, deadline=Deadline.unlimited())
    assert first.counts["rows_archived"] + second.counts["rows_archived"] == 64
    assert not second.stopped_early


def test_directory_store_atomic_put_list_and_key_validation(tmp_path: Path) -> None:
    store = DirectoryArchiveStore(tmp_path)
    store.put("tenant=a/date=2026-01-01/manifest.json", b"{}")
    store.put("tenant=a/date=2026-01-01/manifest.json", b'{"v":2}')
    assert store.get("tenant=a/date=2026-01-01/manifest.json") == b'{"v":2}'
    assert store.exists("tenant=a/date=2026-01-01/manifest.json")
    assert list(store.list("tenant=a/")) == ["tenant=a/date=2026-01-01/manifest.json"]
    assert list(store.list("tenant=b/")) == []
    with pytest.raises(ArchiveObjectMissingError):
        store.get("tenant=a/nope")
    for bad in ("../x", "/abs", "a//b", ""):
        with pytest.raises(ValueError, match="invalid archive key"):
            store.put(bad, b"")


def test_s3_store_round_trip(s3_store: S3ArchiveStore) -> None:
    assert not s3_store.exists("a/b.json")
    s3_store.put("a/b.json", b"1")
    s3_store.put("a/c.jsonl.gz", b"2")
    assert s3_store.exists("a/b.json")
    assert s3_store.get("a/c.jsonl.gz") == b"2"
    assert sorted(s3_store.list("a/")) == ["a/b.json", "a/c.jsonl.gz"]
    with pytest.raises(ArchiveObjectMissingError):
        s3_store.get("a/zzz")
