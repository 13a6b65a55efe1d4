"""Hand-written fakes and seed helpers shared by the jobs tests (plus a check that the fakes behave)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from replyflow.adapters.crypto import TokenCipher
from replyflow.db.models import AutomationLog, InstagramAccount, ReplyLog, Tenant
from replyflow.db.repositories.plans import seed_plans
from replyflow.ports import ArchiveObjectMissingError, GraphCallError, RefreshedToken

KEY = "bG9jYWwtb25seS10b2tlbi1rZXktMzItYnl0ZXMhIT0="


def cipher() -> TokenCipher:
    return TokenCipher(KEY)


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts: list[str] = []

    def put(self, key: str, data: bytes) -> None:
        self.puts.append(key)
        self.objects[key] = data

    def get(self, key: str) -> bytes:
        if key not in self.objects:
            raise ArchiveObjectMissingError(key)
        return self.objects[key]

    def exists(self, key: str) -> bool:
        return key in self.objects

    def list(self, prefix: str) -> Iterator[str]:
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))


class FakeCache:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.deleted: list[str] = []

    def get_json(self, key: str) -> Any | None:
        return self.values.get(key)

    def set_json(self, key: str, value: Any, ttl_seconds: int) -> None:
        self.values[key] = value

    def delete(self, *keys: str) -> None:
        for key in keys:
            self.deleted.append(key)
            self.values.pop(key, None)


@dataclass
class RecordingSink:
    points: list[tuple[str, float, str, dict[str, str]]] = field(default_factory=list)

    def record(self, name: str, value: float, unit: str, dimensions: Mapping[str, str]) -> None:
        self.points.append((name, value, unit, dict(dimensions)))

    def value(self, name: str, **dims: str) -> float | None:
        for n, v, _, d in reversed(self.points):
            if n == name and all(d.get(k) == val for k, val in dims.items()):
                return v
        return None


class FakeGraph:
    """Answers per token: a RefreshedToken, a GraphCallError, or subscribed fields."""

    def __init__(self) -> None:
        self.refresh_answers: dict[str, RefreshedToken | GraphCallError] = {}
        self.fields: dict[str, set[str] | GraphCallError] = {}
        self.subscribe_errors: dict[str, GraphCallError] = {}
        self.refreshed: list[str] = []
        self.subscribed: list[tuple[str, list[str]]] = []

    def refresh_token(self, access_token: str) -> RefreshedToken:
        self.refreshed.append(access_token)
        answer = self.refresh_answers.get(access_token, RefreshedToken(f"{access_token}-new", 5_184_000))
        if isinstance(answer, GraphCallError):
            raise answer
        return answer

    def subscribed_fields(self, access_token: str, app_id: str | None) -> set[str]:
        answer = self.fields.get(access_token, set())
        if isinstance(answer, GraphCallError):
            raise answer
        return set(answer)

    def subscribe(self, access_token: str, fields: Sequence[str]) -> None:
        if access_token in self.subscribe_errors:
            raise self.subscribe_errors[access_token]
        self.subscribed.append((access_token, list(fields)))
        self.fields[access_token] = set(fields)


def add_tenant(session: Session, tenant_id: str, plan: str = "free") -> None:
    seed_plans(session)
    session.add(Tenant(id=tenant_id, name=tenant_id, slug=tenant_id, plan_code=plan))
    session.flush()


def add_account(
    session: Session,
    tenant_id: str,
    account_id: str,
    token: str,
    *,
    issued_at: datetime | None,
    expires_at: datetime | None,
    status: str = "active",
) -> InstagramAccount:
    account = InstagramAccount(
        id=account_id,
        tenant_id=tenant_id,
        ig_user_id=f"ig-{account_id}",
        username=account_id,
        access_token_encrypted=cipher().encrypt(token, context=account_id),
        token_issued_at=issued_at,
        token_expires_at=expires_at,
        status=status,
    )
    session.add(account)
    session.flush()
    return account


def add_logs(session: Session, tenant_id: str, start: datetime, count: int, step: timedelta) -> None:
    """``count`` reply logs and as many automation logs, one every ``step`` from ``start``."""
    for i in range(count):
        at = start + step * i
        session.add(
            ReplyLog(
                tenant_id=tenant_id,
                account_id="acct",
                kind="private_reply",
                status="sent",
                text=f"reply {i} \u2728\nsecond line",
                created_at=at,
            )
        )
        session.add(AutomationLog(tenant_id=tenant_id, account_id="acct", action="matched", created_at=at))
    session.flush()


def test_memory_store_round_trip() -> None:
    store = MemoryStore()
    store.put("a/b", b"x")
    assert store.get("a/b") == b"x"
    assert list(store.list("a/")) == ["a/b"]
    assert not store.exists("a/c")
