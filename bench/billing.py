"""The subscription spike (docs/scaling.md's scenario, docs/billing.md): many tenants upgrading at once.

The local stack (``tests/e2e/conftest.py:launch``: SQLite, fakeredis, in-process broker) with its
Stripe fake, over HTTP:

1. ``tenants`` workspaces sign up (from as many loopback source addresses as the per-IP sign-up limit
   needs);
2. every tenant asks for a checkout at once (``THREADS`` threads), half for pro and half for business,
   each tenant twice (a double click: the customer must still be created once);
3. the fake pays every checkout at once, delivering each signed event ``1 + DUPLICATES`` times (Stripe
   retries; a quarter of the tenants get their events in reverse order);
4. the suite waits until every tenant is on the plan it paid for and every event is applied, then
   checks, from the stack's database and the fake: one customer per tenant, one Stripe subscription
   per customer, one ``billing_events`` row per event, no tenant on another plan.

Measured: checkout latency (API round trip, which includes the Stripe customer and session calls),
the fake's pay-and-deliver round trip per tenant (the webhook's answer to each delivery is inside it),
the time from the first payment to the last tenant on its plan, and to the last event applied (the
duplicates are answered by the webhook and stopped by the event id). Any check that fails raises.
"""

from __future__ import annotations

import secrets
import sqlite3
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.stats import summarize
from bench.support import ms_since, progress, rate

THREADS = 16
DUPLICATES = 1
SIGNUPS_PER_ADDRESS = 8  # under the API's 10 sign-ups per IP per hour
PASSWORD = "correct horse battery"
CONVERGE_TIMEOUT_S = 180.0


def _stack_setting(workdir: Path, name: str) -> str:
    for line in (workdir / ".local" / "stack.env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1]
    raise RuntimeError(f"{name} is not in the stack's stack.env")


def _signup(api: str, index: int) -> dict[str, Any]:
    address = f"127.0.{1 + index // (SIGNUPS_PER_ADDRESS * 250)}.{1 + (index // SIGNUPS_PER_ADDRESS) % 250}"
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, timeout=60) as client:
        email = f"spike-{index}-{secrets.token_hex(3)}@example.com"
        body = {"email": email, "password": PASSWORD, "workspace_name": f"Spike {index}"}
        created = client.post(f"{api}/v1/auth/signup", json=body)
        if created.status_code != 201:
            raise RuntimeError(f"sign-up {index}: {created.status_code} {created.text[:300]}")
        token = created.json()["access_token"]
        me = client.get(f"{api}/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    plan = "pro" if index % 2 == 0 else "business"
    return {"index": index, "token": token, "tenant_id": me["tenant"]["id"], "plan": plan}


def _checkout(api: str, tenant: dict[str, Any]) -> list[float]:
    samples = []
    with httpx.Client(timeout=60) as client:
        for _ in range(2):  # a double click
            t0 = time.perf_counter()
            answer = client.post(
                f"{api}/v1/billing/checkout",
                headers={"Authorization": f"Bearer {tenant['token']}"},
                json={"plan_code": tenant["plan"]},
            )
            samples.append(ms_since(t0))
            if answer.status_code != 200:
                raise RuntimeError(f"checkout {tenant['index']}: {answer.status_code} {answer.text[:300]}")
    return samples


def _customers(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT tenant_id, customer_ref FROM billing_customers").fetchall())


def _pay(stripe: str, tenant: dict[str, Any], customer: str) -> tuple[float, list[int]]:
    t0 = time.perf_counter()
    body = {"customer": customer, "duplicates": DUPLICATES, "reverse": tenant["index"] % 4 == 1}
    answer = httpx.post(f"{stripe}/_fake/pay", json=body, timeout=120)
    if answer.status_code != 200:
        raise RuntimeError(f"pay {tenant['index']}: {answer.status_code} {answer.text[:300]}")
    return ms_since(t0), list(answer.json()["deliveries"])


def _events_stored(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM billing_events").fetchone()[0])


def _plans(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT id, plan_code FROM tenants").fetchall())


def _check(db: Path, stripe: str, tenants: list[dict[str, Any]]) -> dict[str, Any]:
    ids = [t["tenant_id"] for t in tenants]
    marks = ",".join("?" * len(ids))
    with sqlite3.connect(db) as conn:
        customers = conn.execute(
            f"SELECT COUNT(*), COUNT(DISTINCT tenant_id) FROM billing_customers WHERE tenant_id IN ({marks})",
            ids,
        ).fetchone()
        subs = dict(
            conn.execute(
                "SELECT tenant_id, COUNT(*) FROM subscriptions WHERE provider = 'stripe' "
                f"AND tenant_id IN ({marks}) GROUP BY tenant_id",
                ids,
            ).fetchall()
        )
        events = conn.execute(
            f"SELECT COUNT(*) FROM billing_events WHERE tenant_id IN ({marks})", ids
        ).fetchone()
    fake = httpx.get(f"{stripe}/_fake/state", timeout=30).json()
    plans = _plans(db)
    wrong = [t["index"] for t in tenants if plans.get(t["tenant_id"]) != t["plan"]]
    result = {
        "tenants": len(tenants),
        "customers_in_db": customers[0],
        "customers_at_stripe": fake["customers"],
        "stripe_subscriptions_in_db": sum(subs.values()),
        "max_subscriptions_per_tenant": max(subs.values(), default=0),
        "subscriptions_at_stripe": fake["subscriptions"],
        "max_subscriptions_per_customer_at_stripe": fake["subscriptions_per_customer_max"],
        "billing_events_stored": events[0],
        "tenants_on_another_plan": len(wrong),
    }
    n = len(tenants)
    expected = {
        "customers_in_db": n,
        "customers_at_stripe": n,
        "stripe_subscriptions_in_db": n,
        "max_subscriptions_per_tenant": 1,
        "subscriptions_at_stripe": n,
        "max_subscriptions_per_customer_at_stripe": 1,
        "billing_events_stored": 3 * n,
        "tenants_on_another_plan": 0,
    }
    broken = {k: (result[k], v) for k, v in expected.items() if result[k] != v}
    if broken:
        raise RuntimeError(f"the subscription spike broke an invariant (got, expected): {broken}")
    return result


def run(tenants: int = 200) -> list[dict[str, Any]]:
    from tests.e2e.conftest import launch

    with tempfile.TemporaryDirectory(prefix="rf-bench-billing-") as tmp:
        workdir = Path(tmp)
        progress("billing: starting the local stack (subprocess)")
        stack = launch(workdir, extra_args=["--visibility-scale", "1"])
        try:
            db = workdir / "e2e.db"
            stripe = _stack_setting(workdir, "STRIPE_API_BASE")
            progress(f"billing: {tenants} sign-ups")
            with ThreadPoolExecutor(8) as pool:
                made = list(pool.map(lambda i: _signup(stack.api_url, i), range(tenants)))
            progress(f"billing: {2 * tenants} checkouts from {THREADS} threads")
            t0 = time.perf_counter()
            with ThreadPoolExecutor(THREADS) as pool:
                checkout_ms = [
                    s for pair in pool.map(lambda t: _checkout(stack.api_url, t), made) for s in pair
                ]
            checkout_s = time.perf_counter() - t0
            customers = _customers(db)
            progress(f"billing: {tenants} payments, each event delivered {1 + DUPLICATES} times")
            started = time.perf_counter()
            with ThreadPoolExecutor(THREADS) as pool:
                paid = list(pool.map(lambda t: _pay(stripe, t, customers[t["tenant_id"]]), made))
            deliveries = [status for _ms, statuses in paid for status in statuses]
            if any(status != 200 for status in deliveries):
                raise RuntimeError(f"webhook deliveries not 200: {sorted(set(deliveries))}")
            deadline = time.monotonic() + CONVERGE_TIMEOUT_S
            on_plan_s = None
            while time.monotonic() < deadline:  # past it, _check reports what is wrong
                if on_plan_s is None:
                    plans = _plans(db)
                    if all(plans.get(t["tenant_id"]) == t["plan"] for t in made):
                        on_plan_s = time.perf_counter() - started
                if on_plan_s is not None and _events_stored(db) >= 3 * tenants:
                    break
                time.sleep(0.1)
            settled_s = time.perf_counter() - started
            checks = _check(db, stripe, made)
        finally:
            stack.stop()
    note = {"backing": "local stack: SQLite, fakeredis, in-process broker, Stripe fake", **checks}
    return [
        summarize(
            "billing checkout (API, customer + session at the fake)",
            checkout_ms,
            per_s=round(rate(len(checkout_ms), checkout_s), 1),
            **note,
        ),
        summarize(
            f"billing pay + {3 * (1 + DUPLICATES)} signed deliveries per tenant",
            [ms for ms, _ in paid],
            deliveries=len(deliveries),
            first_payment_to_all_on_plan_s=round(on_plan_s, 2) if on_plan_s is not None else None,
            first_payment_to_every_event_applied_s=round(settled_s, 2),
            **note,
        ),
    ]
