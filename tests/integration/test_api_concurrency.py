"""Idempotent plan changes under concurrency, the distributed rate limiter, and log queries that use
the indexes, on the real MariaDB and Redis."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
import redis
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from replyflow.adapters.api_rate_limiter import RedisFixedWindowLimiter
from replyflow.clock import utcnow
from replyflow.db.engine import session_scope
from replyflow.db.models import ReplyLog, Subscription, User
from replyflow.db.repositories import users
from replyflow.errors import ConflictError
from replyflow.services import auth, logs_query
from replyflow.services import subscriptions as service
from replyflow.services.access import Principal
from replyflow.services.billing import ManualBilling
from tests.unit.test_api_support import ApiEnv, make_env

pytestmark = pytest.mark.integration


@pytest.fixture
def env(mysql_url: str, redis_url: str) -> Iterator[ApiEnv]:
    yield from make_env(mysql_url, redis_url)


def owner(env: ApiEnv) -> Principal:
    signup = env.signup("Conc")
    return Principal(signup["tenant_id"], signup["user_id"], "owner", "user")


def subscriptions_of(env: ApiEnv, tenant_id: str, plan: str) -> int:
    with session_scope(env.deps.clients.writer_sessions) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(Subscription)
                .where(Subscription.tenant_id == tenant_id, Subscription.plan_code == plan)
            )
            or 0
        )


def test_same_key_many_at_once_changes_the_plan_once(env: ApiEnv) -> None:
    principal = owner(env)
    request = service.ChangePlanRequest(plan_code="pro")

    def attempt(_: int) -> tuple[int, object] | str:
        try:
            result = service.change_plan_idempotent(
                env.deps.clients.writer_sessions,
                env.deps.cache,
                ManualBilling(),
                principal,
                request,
                "same-key",
                now=utcnow(),
            )
        except ConflictError as error:
            return error.code
        return result.status, result.body["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    successes = [o for o in outcomes if isinstance(o, tuple)]
    assert successes, outcomes
    assert {o for o in successes} == {successes[0]}, "every success must be the same result"
    assert all(o == "idempotency_in_progress" for o in outcomes if isinstance(o, str))
    assert subscriptions_of(env, principal.tenant_id, "pro") == 1
    other_body = service.ChangePlanRequest(plan_code="business")
    with pytest.raises(ConflictError) as reused:
        service.change_plan_idempotent(
            env.deps.clients.writer_sessions,
            env.deps.cache,
            ManualBilling(),
            principal,
            other_body,
            "same-key",
            now=utcnow(),
        )
    assert reused.value.code == "idempotency_key_reused"


def test_one_email_signed_up_many_at_once_makes_one_user_and_409s(
    env: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every signup passes the "email free?" read before any inserts; the unique index decides."""
    attempts = 4  # every attempt holds a connection at the barrier: at most the pool (2 + overflow 2)
    barrier = threading.Barrier(attempts)
    read = users.by_email

    def read_then_wait(session: Session, email: str) -> User | None:
        found = read(session, email)
        barrier.wait(10)
        return found

    monkeypatch.setattr(users, "by_email", read_then_wait)
    email = f"race-{secrets.token_hex(4)}@example.com"

    def attempt(i: int) -> str:
        request = auth.SignupRequest(email=email, password="correct horse battery", workspace_name=f"R{i}")
        try:
            with session_scope(env.deps.clients.writer_sessions) as session:
                cfg, limiter = env.deps.auth_config, env.deps.limiter
                auth.signup(session, cfg, limiter, request, ip=f"10.77.0.{i}", now=utcnow())
        except ConflictError as error:
            return error.code
        return "created"

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        outcomes = sorted(pool.map(attempt, range(attempts)))
    assert outcomes == ["created"] + ["email_taken"] * (attempts - 1)
    with session_scope(env.deps.clients.writer_sessions) as session:
        assert session.scalar(select(func.count()).select_from(User).where(User.email == email)) == 1


def test_different_keys_at_once_still_leave_one_active_subscription(env: ApiEnv) -> None:
    principal = owner(env)
    request = service.ChangePlanRequest(plan_code="business")

    def attempt(i: int) -> int:
        return service.change_plan_idempotent(
            env.deps.clients.writer_sessions,
            env.deps.cache,
            ManualBilling(),
            principal,
            request,
            f"key-{i}",
            now=utcnow(),
        ).status

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(attempt, range(6))) == {200}
    assert subscriptions_of(env, principal.tenant_id, "business") == 1
    with session_scope(env.deps.clients.writer_sessions) as session:
        active = session.scalar(
            select(func.count())
            .select_from(Subscription)
            .where(Subscription.tenant_id == principal.tenant_id, Subscription.status == "active")
        )
    assert active == 1


def test_stored_errors_replay_too(env: ApiEnv) -> None:
    principal = owner(env)
    request = service.ChangePlanRequest(plan_code="no-such-plan")
    first = service.change_plan_idempotent(
        env.deps.clients.writer_sessions,
        env.deps.cache,
        ManualBilling(),
        principal,
        request,
        "k",
        now=utcnow(),
    )
    again = service.change_plan_idempotent(
        env.deps.clients.writer_sessions,
        env.deps.cache,
        ManualBilling(),
        principal,
        request,
        "k",
        now=utcnow(),
    )
    assert (first.status, again.status, again.replayed) == (422, 422, True)
    assert again.body == first.body


def test_rate_limiter_counts_exactly_across_threads(redis_url: str, redis_namespace: str) -> None:
    limiter = RedisFixedWindowLimiter(redis.Redis.from_url(redis_url), namespace=redis_namespace)
    with ThreadPoolExecutor(max_workers=16) as pool:
        decisions = list(pool.map(lambda _: limiter.hit("api:t1", 50, 60), range(80)))
    assert sum(d.allowed for d in decisions) == 50
    assert all(0 < d.reset_seconds <= 60 for d in decisions)
    assert min(d.remaining for d in decisions) == 0


def test_log_pages_walk_the_index_without_offset(env: ApiEnv) -> None:
    principal = owner(env)
    tenant = principal.tenant_id
    base = datetime(2026, 3, 1)
    rows = [
        {
            "tenant_id": tenant,
            "account_id": "acc-1" if i % 4 else "acc-2",
            "kind": "private_reply",
            "status": "sent" if i % 5 else "failed",
            "created_at": base + timedelta(seconds=i // 3),
        }
        for i in range(3000)
    ]
    with session_scope(env.deps.clients.writer_sessions) as session:
        session.execute(insert(ReplyLog), rows)
    seen: list[int] = []
    cursor = None
    with session_scope(env.deps.clients.reader_sessions) as session:
        while True:
            page = logs_query.reply_logs(session, principal, account_id="acc-1", cursor=cursor, limit=200)
            seen += [item.id for item in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert len(seen) == 2250
        assert len(set(seen)) == 2250
        keyset = logs_query.decode_cursor(
            "r", logs_query.encode_cursor("r", base + timedelta(seconds=500), 10**12)
        )
        assert keyset is not None
        plan = (
            session.execute(
                text(
                    "EXPLAIN SELECT id FROM reply_logs WHERE tenant_id = :t AND account_id = :a "
                    "AND created_at <= :c AND (created_at < :c OR id < :i) "
                    "ORDER BY created_at DESC, id DESC LIMIT 51"
                ),
                {"t": tenant, "a": "acc-1", "c": keyset.created_at, "i": keyset.id},
            )
            .mappings()
            .all()
        )
    assert plan[0]["key"] in {"ix_reply_logs_tenant_account_created", "ix_reply_logs_tenant_created"}, plan
    assert "filesort" not in (plan[0]["Extra"] or "").lower(), plan
