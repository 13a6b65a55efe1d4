"""Billing on the real MariaDB: Stripe events delivered twice, out of order and at the same moment by
several workers change the state once; the DM quota reservation is exact across threads; the
customer is created once under concurrent checkouts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from replyflow.clock import utcnow
from replyflow.db.engine import session_scope
from replyflow.db.models import BillingCustomer, BillingEvent, Subscription, Tenant
from replyflow.db.repositories import usage
from replyflow.services.billing import apply_event
from tests.support_billing import BillingWorld
from tests.unit.test_api_support import ApiEnv, make_env


@pytest.fixture
def env(mysql_url: str, redis_url: str) -> Iterator[ApiEnv]:
    yield from make_env(mysql_url, redis_url)


def scalar(env: ApiEnv, stmt: object) -> int:
    with session_scope(env.deps.clients.writer_sessions) as session:
        return int(session.scalar(stmt) or 0)  # type: ignore[call-overload]


def apply_all(world: BillingWorld, payloads: list[dict], workers: int = 8) -> list[str]:
    def run(event: dict) -> str:
        return apply_event(
            world.env.deps.clients.writer_sessions,
            world.env.deps.cache,
            world.gateway,
            event,
            now=utcnow(),
            grace=timedelta(hours=1),
        )

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, payloads))


def test_concurrent_duplicate_and_reversed_events_apply_once(env: ApiEnv) -> None:
    world = BillingWorld.on(env)
    owner = world.signup()
    assert world.checkout(owner, "pro").status == 200
    events = world.fake.pay(world.customer(owner))
    deliveries = [json.loads(json.dumps(e)) for e in reversed(events)] * 4  # 12, reversed, at once
    outcomes = apply_all(world, deliveries)
    assert outcomes.count("duplicate") == 9
    assert sorted(o for o in outcomes if o != "duplicate") == ["activated", "unchanged", "unchanged"]
    tenant_id = owner["tenant_id"]
    with session_scope(env.deps.clients.writer_sessions) as session:
        assert session.scalar(select(Tenant.plan_code).where(Tenant.id == tenant_id)) == "pro"
    stripe_subs = (
        select(func.count())
        .select_from(Subscription)
        .where(Subscription.tenant_id == tenant_id, Subscription.provider == "stripe")
    )
    assert scalar(env, stripe_subs) == 1
    seen = select(func.count()).select_from(BillingEvent).where(BillingEvent.tenant_id == tenant_id)
    assert scalar(env, seen) == 3


def test_failed_then_paid_out_of_order_ends_on_what_stripe_says(env: ApiEnv) -> None:
    world = BillingWorld.on(env)
    owner = world.signup()
    world.checkout(owner, "pro")
    world.stripe("pay", owner)
    failed = world.fake.fail(world.customer(owner))
    paid = world.fake.pay(world.customer(owner))
    # The paid invoice's events arrive before the failure's: the state is Stripe's current one.
    apply_all(world, paid + failed, workers=1)
    view = world.billing(owner)
    assert (view["plan_code"], view["status"], view["grace_until"]) == ("pro", "active", None)


def test_concurrent_checkouts_create_one_customer(env: ApiEnv) -> None:
    world = BillingWorld.on(env)
    owner = world.signup()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: world.checkout(owner, "pro").status, range(8)))
    assert statuses == [200] * 8
    assert len(world.fake.state.customers) == 1
    rows = (
        select(func.count())
        .select_from(BillingCustomer)
        .where(BillingCustomer.tenant_id == owner["tenant_id"])
    )
    assert scalar(env, rows) == 1


def test_dm_quota_reservations_are_exact_across_threads(env: ApiEnv) -> None:
    world = BillingWorld.on(env)
    owner = world.signup()
    now = utcnow()

    def reserve(_: int) -> bool:
        with session_scope(env.deps.clients.writer_sessions) as session:
            return usage.reserve_dm(session, owner["tenant_id"], 7, at=now)

    with ThreadPoolExecutor(10) as pool:
        granted = list(pool.map(reserve, range(30)))
    assert granted.count(True) == 7
    with session_scope(env.deps.clients.writer_sessions) as session:
        assert usage.dms_sent(session, owner["tenant_id"], at=now) == 7
        usage.release_dm(session, owner["tenant_id"], usage.period_of(now), now=now)
    with session_scope(env.deps.clients.writer_sessions) as session:
        assert usage.dms_sent(session, owner["tenant_id"], at=now) == 6
        assert usage.reserve_dm(session, owner["tenant_id"], 7, at=now)
        assert not usage.reserve_dm(session, owner["tenant_id"], 7, at=now)
