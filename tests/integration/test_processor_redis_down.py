"""The processor with Redis refusing connections, on the real MariaDB: cooldowns fall back to the
ledger and reply variants to a per-comment choice, so no event fails (and none is retried into the
DLQ), none is answered twice, and a contact inside the cooldown is still held back."""

from __future__ import annotations

import socket
import time
import zlib

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.crypto import TokenCipher
from replyflow.adapters.rate_limiter import RedisCooldowns
from replyflow.adapters.redis_client import redis_options
from replyflow.db.engine import session_factory, session_scope
from replyflow.db.models import OutboundMessage
from replyflow.domain.messages import EventMessage
from replyflow.domain.webhook_events import parse_body
from replyflow.services.process_event import EventProcessor
from tests.support_pipeline import KEY, DictCache, MemoryQueues, Seeded, comment_body, seed_tenant

pytestmark = pytest.mark.integration

ACTIONS = {
    "private_reply": {"template_text": "Hi {{username}}, here: https://x.example"},
    "public_reply": {"variants": ["Sent you a DM!", "Check your inbox!", "On its way!"]},
}


def _refusing_redis() -> redis.Redis:
    with socket.socket() as sock:  # a free port nobody listens on: every connect is refused
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return redis.Redis.from_url(f"redis://127.0.0.1:{port}/0", **redis_options())


def _comment(seeded: Seeded, comment_id: str, sender: str) -> EventMessage:
    body = comment_body(seeded.ig_user_id, comment_id, "LINK please", time=int(time.time()), from_id=sender)
    return EventMessage(seeded.tenant_id, seeded.account_id, parse_body(body).events[0])


@pytest.fixture
def sessions(mysql_url: str) -> sessionmaker[Session]:
    return session_factory(mysql_url, pool_size=2)


def test_redis_refusing_connections_neither_loses_nor_duplicates(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        seeded = seed_tenant(
            session, TokenCipher(KEY), automations=[{"cooldown_seconds": 3600, "actions": ACTIONS}]
        )
    queues = MemoryQueues()
    processor = EventProcessor(
        sessions=sessions,
        cache=DictCache(),
        cooldowns=RedisCooldowns(_refusing_redis(), namespace="rfdown"),
        publisher=queues,
    )
    auto = seeded.automation_ids[0]
    first = processor.process(_comment(seeded, "c-ana-1", "ana"))
    assert first.decisions == [(auto, "matched", None), (auto, "queued", None), (auto, "queued", None)]
    again = processor.process(_comment(seeded, "c-ana-1", "ana"))  # the same delivery, redelivered
    assert again.duplicate
    held = processor.process(_comment(seeded, "c-ana-2", "ana"))  # inside the contact's cooldown
    assert held.decisions == [(auto, "skipped", "cooldown")]
    other = processor.process(_comment(seeded, "c-bo-1", "bo"))  # another contact: not held back
    assert len(other.queued) == 2
    with session_scope(sessions) as session:
        rows = session.scalars(
            select(OutboundMessage).where(OutboundMessage.tenant_id == seeded.tenant_id)
        ).all()
        got = sorted((r.kind, r.dedupe_key, r.status, r.payload.get("variant")) for r in rows)
    assert got == sorted(
        [
            ("private_reply", "c-ana-1", "queued", None),
            ("public_reply", "c-ana-1", "queued", zlib.crc32(b"c-ana-1") % 3),
            ("private_reply", "c-bo-1", "queued", None),
            ("public_reply", "c-bo-1", "queued", zlib.crc32(b"c-bo-1") % 3),
        ]
    )
    assert queues.pending("sends-") == 4
