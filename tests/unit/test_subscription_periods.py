"""Period ends: a cancelled paid subscription falls to free; any other renews; re-running is a no-op."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from replyflow.adapters.redis_client import RedisCache
from replyflow.db.engine import session_factory, session_scope
from replyflow.db.models import Subscription, Tenant
from replyflow.db.repositories.plans import seed_plans
from replyflow.services import cache_keys
from replyflow.services.subscriptions import settle_period_ends

NOW = datetime(2026, 7, 1, 0, 5)


def _tenant(session, slug: str, *, cancel: bool, ends: datetime) -> str:
    tenant = Tenant(name=slug, slug=slug, plan_code="pro")
    session.add(tenant)
    session.flush()
    session.add(
        Subscription(
            tenant_id=tenant.id,
            plan_code="pro",
            status="active",
            current_period_start=ends - timedelta(days=30),
            current_period_end=ends,
            cancel_at_period_end=cancel,
        )
    )
    return tenant.id


def test_period_ends_renew_or_downgrade_once(sqlite_url: str) -> None:
    import fakeredis

    sessions = session_factory(sqlite_url)
    cache = RedisCache(fakeredis.FakeRedis())
    with session_scope(sessions) as session:
        seed_plans(session)
        cancelled = _tenant(session, "cancelled", cancel=True, ends=NOW - timedelta(hours=1))
        renewing = _tenant(session, "renewing", cancel=False, ends=NOW - timedelta(hours=1))
        running = _tenant(session, "running", cancel=False, ends=NOW + timedelta(days=3))
    cache.set_json(cache_keys.tenant_config_key(cancelled), {"plan_code": "pro"}, 60)

    assert settle_period_ends(sessions, cache, now=NOW) == {"renewed": 1, "downgraded": 1}
    assert settle_period_ends(sessions, cache, now=NOW) == {"renewed": 0, "downgraded": 0}

    with session_scope(sessions) as session:
        plans = dict(session.execute(select(Tenant.id, Tenant.plan_code)).all())
        active = {
            s.tenant_id: s
            for s in session.scalars(select(Subscription).where(Subscription.status == "active"))
        }
    assert plans == {cancelled: "free", renewing: "pro", running: "pro"}
    assert active[cancelled].plan_code == "free"
    assert active[renewing].current_period_end == NOW - timedelta(hours=1) + timedelta(days=30)
    assert active[running].current_period_end == NOW + timedelta(days=3)
    assert cache.get_json(cache_keys.tenant_config_key(cancelled)) is None
