"""Token refresh and webhook subscriptions against the Instagram sandbox over HTTP, MariaDB and Redis."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from local.sandbox import SandboxServer
from replyflow.adapters.graph_tokens import HttpxGraphTokenClient
from replyflow.adapters.redis_client import RedisCache
from replyflow.clock import utcnow
from replyflow.db.engine import session_factory
from replyflow.db.models import InstagramAccount
from replyflow.services.cache_keys import account_route_key
from replyflow.services.jobs.common import Deadline
from replyflow.services.jobs.health import REQUIRED_FIELDS, run_webhook_subscriptions
from replyflow.services.jobs.token_refresh import run_token_refresh
from tests.unit.test_jobs_fakes import add_account, add_tenant, cipher

pytestmark = pytest.mark.integration

APP_ID = "jobs-sandbox-app"
DAY = 24 * 3600


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer("127.0.0.1", 0, app_id=APP_ID, app_secret="jobs-secret")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def graph(sandbox: SandboxServer) -> Iterator[HttpxGraphTokenClient]:
    client = HttpxGraphTokenClient(base_url=sandbox.url, graph_base=sandbox.graph_url, timeout=5)
    yield client
    client.close()


def _seed(sessions: sessionmaker[Session], sandbox: SandboxServer, tenant: str) -> dict[str, str]:
    """Three accounts: due for refresh, expired at Instagram, and one Instagram still thinks too young."""
    now, wall = utcnow(), time.time()
    suffix = secrets.token_hex(3)
    plan = {
        "due": (55 * DAY, 60 * DAY, now - timedelta(days=55), now + timedelta(days=5)),
        "expired": (70 * DAY, 60 * DAY, now - timedelta(days=70), now - timedelta(days=10)),
        # Our row says two days old (a clock or bookkeeping slip); the sandbox issued it an hour ago.
        "young": (3600, 60 * DAY, now - timedelta(days=2), now + timedelta(days=3)),
    }
    ids = {}
    with sessions() as session:
        add_tenant(session, tenant)
        for name, (age, ttl, issued_at, expires_at) in plan.items():
            account_id = f"{name}-{suffix}"
            token = sandbox.issue_token(f"ig-{account_id}", name, expires_in=ttl, issued_at=wall - age)
            add_account(session, tenant, account_id, token, issued_at=issued_at, expires_at=expires_at)
            ids[name] = account_id
        session.commit()
    return ids


def _account(sessions: sessionmaker[Session], account_id: str) -> InstagramAccount:
    with sessions() as session:
        account = session.get(InstagramAccount, account_id)
        assert account is not None
        return account


def test_token_refresh_against_the_sandbox(
    mysql_url: str, redis_url: str, redis_namespace: str, sandbox: SandboxServer, graph: HttpxGraphTokenClient
) -> None:
    sessions = session_factory(mysql_url)
    tenant = f"t-tok-{secrets.token_hex(4)}"
    ids = _seed(sessions, sandbox, tenant)
    cache = RedisCache(redis.Redis.from_url(redis_url), namespace=redis_namespace)
    cache.set_json(account_route_key(f"ig-{ids['expired']}"), {"status": "active"}, 60)
    before = _account(sessions, ids["due"])

    result = run_token_refresh(
        sessions, graph, cipher(), cache, now=utcnow(), deadline=Deadline.unlimited(), tenant_ids=[tenant]
    )

    assert result.counts == {"candidates": 3, "refreshed": 1, "needs_reauth": 1, "failed_retry_next_run": 1}
    due = _account(sessions, ids["due"])
    new_token = cipher().decrypt(due.access_token_encrypted, context=due.id)
    assert new_token != cipher().decrypt(before.access_token_encrypted, context=due.id)
    assert due.token_expires_at is not None
    assert due.token_expires_at > utcnow() + timedelta(days=59)
    assert due.token_issued_at is not None
    assert abs(due.token_issued_at - utcnow()) < timedelta(minutes=1)
    # The stored token is the live one.
    response = httpx.get(f"{sandbox.graph_url}/me/subscribed_apps", params={"access_token": new_token})
    assert response.status_code == 200

    expired = _account(sessions, ids["expired"])
    assert expired.status == "needs_reauth"
    assert expired.status_reason is not None
    assert "190/463" in expired.status_reason
    assert cache.get_json(account_route_key(f"ig-{ids['expired']}")) is None

    young = _account(sessions, ids["young"])
    assert young.status == "active"  # Instagram's 24 h rule: retried on a later run, not flagged

    # Idempotent: the refreshed account is no longer due; only the young one is tried again.
    again = run_token_refresh(
        sessions, graph, cipher(), cache, now=utcnow(), deadline=Deadline.unlimited(), tenant_ids=[tenant]
    )
    assert again.counts == {"candidates": 1, "failed_retry_next_run": 1}


def test_webhook_subscriptions_against_the_sandbox(
    mysql_url: str, redis_url: str, redis_namespace: str, sandbox: SandboxServer, graph: HttpxGraphTokenClient
) -> None:
    sessions = session_factory(mysql_url)
    tenant = f"t-sub-{secrets.token_hex(4)}"
    ids = _seed(sessions, sandbox, tenant)
    cache = RedisCache(redis.Redis.from_url(redis_url), namespace=redis_namespace)
    now = datetime.now().replace(microsecond=0)

    result = run_webhook_subscriptions(
        sessions,
        graph,
        cipher(),
        cache,
        app_id=APP_ID,
        now=now,
        deadline=Deadline.unlimited(),
        tenant_ids=[tenant],
    )

    assert result.counts == {"accounts": 3, "resubscribed": 2, "needs_reauth": 1}
    assert _account(sessions, ids["expired"]).status == "needs_reauth"
    token = cipher().decrypt(_account(sessions, ids["due"]).access_token_encrypted, context=ids["due"])
    assert graph.subscribed_fields(token, APP_ID) >= set(REQUIRED_FIELDS)
    assert _account(sessions, ids["due"]).webhook_subscribed_at == now

    again = run_webhook_subscriptions(
        sessions,
        graph,
        cipher(),
        cache,
        app_id=APP_ID,
        now=now,
        deadline=Deadline.unlimited(),
        tenant_ids=[tenant],
    )
    assert again.counts == {"accounts": 2, "subscribed": 2}
