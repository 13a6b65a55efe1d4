"""Billing through the API, the Stripe webhook and the processor, on the in-process Stripe fake
(the real ``stripe`` library, signatures checked by its own code; no sockets)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import ValidationError as SettingsError
from sqlalchemy import func, select

from replyflow.adapters.stripe_billing import StripeBilling
from replyflow.clock import utcnow
from replyflow.db.engine import session_scope
from replyflow.db.models import BillingCustomer, BillingEvent, Subscription
from replyflow.services.billing import settle_grace
from replyflow.settings import Settings
from tests.support_billing import BillingWorld, forged
from tests.unit.test_api_resources import connect
from tests.unit.test_api_support import ApiEnv, make_env


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


@pytest.fixture
def world(api_env: ApiEnv) -> BillingWorld:
    return BillingWorld.on(api_env)


def count(world: BillingWorld, model: type, **where: str) -> int:
    with session_scope(world.env.deps.clients.writer_sessions) as session:
        stmt = select(func.count()).select_from(model)
        for name, value in where.items():
            stmt = stmt.where(getattr(model, name) == value)
        return int(session.scalar(stmt) or 0)


def automations(world: BillingWorld, owner: dict, n: int) -> list[dict]:
    account = connect(world.env, owner["token"], "17841400000000777")
    made = []
    for i in range(n):
        body = {
            "account_id": account["id"],
            "name": f"auto {i}",
            "trigger": "comment",
            "keywords": [f"kw{i}"],
            "priority": i,
            "actions": {"public_reply": {"variants": ["thanks!"]}},
        }
        created = world.env.call("POST", "/v1/automations", token=owner["token"], body=body)
        assert created.status == 201, created.body
        made.append(created.body)
    return made


def test_checkout_then_paid_webhook_puts_the_tenant_on_pro(world: BillingWorld) -> None:
    owner = world.signup()
    assert world.billing(owner)["plan_code"] == "free"
    started = world.checkout(owner, "pro")
    assert started.status == 200, started.body
    assert started.body["url"].startswith("https://checkout.fake/checkout/cs_")
    assert world.billing(owner)["plan_code"] == "free"  # asking is not paying

    emitted = world.stripe("pay", owner)
    assert [e["type"] for e in emitted["events"]] == [
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
    ]
    assert world.statuses == [200, 200, 200]
    view = world.billing(owner)
    assert (view["plan_code"], view["status"], view["provider"]) == ("pro", "active", "stripe")
    limits = {line["limit"]: line["allowed"] for line in view["usage"]}
    assert limits["monthly_dm_quota"] == 25000
    assert limits["max_automations"] == 50
    assert view["renews_at"] == view["current_period_end"] is not None
    assert [i["status"] for i in view["invoices"]] == ["paid"]
    assert view["invoices"][0]["amount_paid"] == 2900
    assert count(world, Subscription, tenant_id=owner["tenant_id"], provider="stripe") == 1


def test_duplicate_and_out_of_order_events_change_nothing_twice(world: BillingWorld) -> None:
    owner = world.signup()
    world.checkout(owner, "pro")
    emitted = world.stripe("pay", owner, reverse=True, duplicates=2)  # 9 deliveries, reversed
    assert len(world.statuses) == 9
    world.replay(emitted)
    assert world.billing(owner)["plan_code"] == "pro"
    assert count(world, Subscription, tenant_id=owner["tenant_id"], provider="stripe") == 1
    assert count(world, BillingEvent, tenant_id=owner["tenant_id"]) == 3
    assert count(world, BillingCustomer, tenant_id=owner["tenant_id"]) == 1


def test_a_second_checkout_reuses_the_customer_and_a_subscriber_is_sent_to_the_portal(
    world: BillingWorld,
) -> None:
    owner = world.signup()
    assert world.checkout(owner, "pro").status == 200
    assert world.checkout(owner, "business").status == 200
    assert len(world.fake.state.customers) == 1
    world.stripe("pay", owner)
    again = world.checkout(owner, "business")
    assert (again.status, again.body["error"]["code"]) == (409, "already_subscribed")
    portal = world.env.call("POST", "/v1/billing/portal", token=owner["token"])
    assert portal.status == 200
    assert portal.body["url"].startswith("https://checkout.fake/portal/")


def test_failed_payment_keeps_the_plan_in_grace_then_free_with_automations_paused(
    world: BillingWorld,
) -> None:
    owner = world.signup()
    world.checkout(owner, "pro")
    world.stripe("pay", owner)
    made = automations(world, owner, 5)

    world.stripe("fail", owner)
    view = world.billing(owner)
    assert (view["plan_code"], view["status"]) == ("pro", "past_due")
    assert view["grace_until"] is not None
    assert "payment failed" in view["status_reason"]

    assert settle_grace(world.env.deps.clients.writer_sessions, world.env.deps.cache, now=utcnow()) == 0
    later = utcnow() + timedelta(seconds=3601)
    assert settle_grace(world.env.deps.clients.writer_sessions, world.env.deps.cache, now=later) == 1
    view = world.billing(owner)
    assert view["plan_code"] == "free"
    assert "grace period ended" in view["status_reason"]
    paused = {a["id"] for a in view["paused_automations"]}
    assert paused == {made[3]["id"], made[4]["id"]}  # the lowest priorities; the first 3 keep running
    listed = world.env.call("GET", "/v1/automations", token=owner["token"]).body
    rows = listed["items"] if isinstance(listed, dict) else listed
    by_id = {a["id"]: a for a in rows}
    assert all(not by_id[i]["active"] and "grace period ended" in by_id[i]["paused_reason"] for i in paused)
    assert len(rows) == 5  # paused, not deleted
    blocked = world.env.call("POST", f"/v1/automations/{made[4]['id']}/enable", token=owner["token"])
    assert (blocked.status, blocked.body["error"]["code"]) == (402, "plan_limit_reached")

    world.stripe("pay", owner)  # the customer pays the open invoice: the plan comes back
    view = world.billing(owner)
    assert (view["plan_code"], view["status"]) == ("pro", "active")
    assert view["paused_automations"] == []


def test_cancellation_moves_the_tenant_to_free(world: BillingWorld) -> None:
    owner = world.signup()
    world.checkout(owner, "pro")
    world.stripe("pay", owner)
    world.stripe("cancel", owner)
    view = world.billing(owner)
    assert view["plan_code"] == "free"
    assert "canceled in Stripe" in view["status_reason"]


def test_a_forged_signature_is_a_400_and_changes_nothing(world: BillingWorld) -> None:
    owner = world.signup()
    world.checkout(owner, "pro")
    customer = world.customer(owner)
    events = world.fake.pay(customer)
    raw, signature = forged(events[1])
    answer = world.webhook(raw, signature)
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"]["code"] == "invalid_signature"
    assert world.webhook(raw, None)["statusCode"] == 400
    genuine = world.fake.signed(events[1])
    tampered = genuine[0].replace(b'"active"', b'"trialing"')
    assert world.webhook(tampered, genuine[1])["statusCode"] == 400
    assert world.queues.published == []
    assert world.billing(owner)["plan_code"] == "free"
    assert count(world, BillingEvent) == 0


def test_a_stripe_provider_refuses_a_paid_plan_without_payment(world: BillingWorld) -> None:
    owner = world.signup()
    world.env.use(billing=StripeBilling(world.gateway))
    refused = world.env.call("POST", "/v1/subscriptions", token=owner["token"], body={"plan_code": "pro"})
    assert (refused.status, refused.body["error"]["code"]) == (402, "payment_required")
    assert world.billing(owner)["plan_code"] == "free"


def test_checkout_is_for_owners_and_paid_plans(world: BillingWorld) -> None:
    owner = world.signup()
    free = world.checkout(owner, "free")
    assert (free.status, free.body["error"]["code"]) == (409, "not_a_paid_plan")
    unknown = world.checkout(owner, "platinum")
    assert unknown.status == 422
    member = world.env.invite_and_accept(owner["token"], "member@example.com")
    denied = world.env.call(
        "POST", "/v1/billing/checkout", token=member["access_token"], body={"plan_code": "pro"}
    )
    assert denied.status == 403
    assert world.env.call("POST", "/v1/billing/portal", token=owner["token"]).status == 404


def test_deployed_settings_require_the_stripe_keys() -> None:
    from tests.unit.test_safe_defaults import strong

    Settings(**strong())
    for name in ("stripe_secret_key", "stripe_webhook_secret"):
        with pytest.raises(SettingsError, match=name.upper()):
            Settings(**{**strong(), name: ""})
    assert Settings(environment="test").billing_manual_allowed
    assert not Settings(**strong()).billing_manual_allowed
