"""Locust users of the four scenarios (``bench.loadtest.scenarios``); run by ``python -m bench.loadtest``.

Every user reads the run's plan from the JSON file named by ``LOADTEST_PLAN`` (written by the runner
after it seeded the stack): credentials, accounts, the app secret that signs webhooks, where to log
when each comment left. Each user binds its own loopback source address (127.0.x.y), so the API's
per-address login limits see many clients, as they would in production, not one.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from locust import HttpUser, between, constant_throughput, events, task
from requests.adapters import HTTPAdapter

from bench.loadtest.scenarios import new_comment_id, sign, webhook_body

_PLAN: dict[str, Any] = (
    json.loads(Path(os.environ["LOADTEST_PLAN"]).read_text()) if os.environ.get("LOADTEST_PLAN") else {}
)
_counter = itertools.count()
_sent_lock = threading.Lock()


class _SourceAddress(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self._address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._address, 0)
        super().init_poolmanager(*args, **kwargs)


def _bind(user: HttpUser, n: int) -> None:
    address = f"127.0.{100 + n // 250}.{1 + n % 250}"
    user.client.mount("http://", _SourceAddress(address))


def _log_sent(comment_ids: list[str], at: float) -> None:
    path = _PLAN.get("sent_log")
    if not path:
        return
    with _sent_lock, Path(path).open("a") as out:
        out.writelines(json.dumps({"comment_id": c, "sent_at": at}) + "\n" for c in comment_ids)


class _Authenticated(HttpUser):
    abstract = True
    credentials_key = ""

    def on_start(self) -> None:
        n = next(_counter)
        _bind(self, n)
        people = _PLAN[self.credentials_key]
        self.person = people[n % len(people)]
        with self.client.post(
            "/v1/auth/login",
            json={"email": self.person["email"], "password": self.person["password"]},
            name="/v1/auth/login",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"login {response.status_code}: {response.text[:200]}")
                self.headers: dict[str, str] = {}
                return
            self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}


class DashboardUser(_Authenticated):
    """Scenario ``sessions``: a person in the dashboard, clicking every second or so."""

    wait_time = between(0.5, 1.5)
    credentials_key = "dashboard_users"

    @task(2)
    def accounts(self) -> None:
        self.client.get("/v1/accounts", headers=self.headers, name="/v1/accounts")

    @task(3)
    def automations(self) -> None:
        self.client.get("/v1/automations", headers=self.headers, name="/v1/automations")

    @task(3)
    def reply_logs(self) -> None:
        params = {"limit": "50"} if random.random() < 0.7 else {"limit": "50", "status": "failed"}
        self.client.get("/v1/logs/replies", headers=self.headers, params=params, name="/v1/logs/replies")

    @task(2)
    def automation_logs(self) -> None:
        self.client.get(
            "/v1/logs/automations", headers=self.headers, params={"limit": "50"}, name="/v1/logs/automations"
        )

    @task(2)
    def stats(self) -> None:
        self.client.get("/v1/stats", headers=self.headers, name="/v1/stats")

    @task(1)
    def me(self) -> None:
        self.client.get("/v1/me", headers=self.headers, name="/v1/me")


class WebhookBurstUser(HttpUser):
    """Scenario ``webhook_bursts``: Meta delivering 1-5 entries per POST, signed; about one delivery in
    five is sent again (a redelivery), one in ten repeats a comment of an earlier body."""

    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        self.accounts = list(_PLAN["webhook_accounts"])
        self.secret = str(_PLAN["app_secret"])
        self.seen: list[tuple[str, str]] = []

    def _post(self, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(self.secret, body)}
        self.client.post("/webhooks/instagram", data=body, headers=headers, name="/webhooks/instagram")

    @task
    def burst(self) -> None:
        entries = []
        for _ in range(random.randint(1, 5)):
            account = random.choice(self.accounts)
            if self.seen and random.random() < 0.1:
                account, comment_id = random.choice(self.seen)
            else:
                comment_id = new_comment_id()
                self.seen.append((account, comment_id))
            entries.append((account, comment_id, "love this post"))
        body = webhook_body(entries)
        for _ in range(2 if random.random() < 0.2 else 1):
            self._post(body)
        del self.seen[:-200]


class DmSendingUser(HttpUser):
    """Scenario ``dm_sending``: one user per account, commenting the keyword at a steady rate; each
    comment's id and departure time go to the sent log, and the runner times its DM at the sandbox."""

    wait_time = constant_throughput(float(_PLAN.get("dm_rate_per_account", 1.0)))

    def on_start(self) -> None:
        n = next(_counter)
        accounts = _PLAN["dm_accounts"]
        self.account = accounts[n % len(accounts)]
        self.secret = str(_PLAN["app_secret"])
        self.left = int(_PLAN.get("dm_comments_per_account", 10**9))

    @task
    def comment(self) -> None:
        if self.left <= 0:
            return
        self.left -= 1
        comment_id = new_comment_id()
        body = webhook_body([(self.account, comment_id, "LINK please")])
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(self.secret, body)}
        sent_at = time.time()
        response = self.client.post(
            "/webhooks/instagram", data=body, headers=headers, name="/webhooks/instagram (DM)"
        )
        if response.status_code == 200:
            _log_sent([comment_id], sent_at)


class SubscriptionUser(_Authenticated):
    """Scenario ``subscription_spikes``: owners changing plans at once, each change under a fresh
    Idempotency-Key, about a third of them replayed with the same key and body (a client retrying)."""

    wait_time = between(0.1, 0.6)
    credentials_key = "subscription_owners"
    PLANS = ("pro", "business")

    def on_start(self) -> None:
        super().on_start()
        self.last: tuple[str, str] | None = None
        self.flip = 0

    @task(3)
    def change_plan(self) -> None:
        self.flip += 1
        body = {"plan_code": self.PLANS[self.flip % 2]}
        key = str(uuid.uuid4())
        self._change(key, body, "/v1/subscriptions")
        self.last = (key, body["plan_code"])

    @task(2)
    def replay(self) -> None:
        if self.last is None:
            return
        key, plan = self.last
        with self.client.post(
            "/v1/subscriptions",
            json={"plan_code": plan},
            headers={**self.headers, "Idempotency-Key": key},
            name="/v1/subscriptions (replay)",
            catch_response=True,
        ) as response:
            if response.headers.get("Idempotent-Replayed") != "true":
                response.failure(f"a replayed key was not replayed ({response.status_code})")

    @task(1)
    def current(self) -> None:
        self.client.get("/v1/subscriptions/current", headers=self.headers, name="/v1/subscriptions/current")

    # BILLING WEBHOOKS: once Stripe billing lands, add a task here that posts a signed Stripe event
    # (customer.subscription.created/updated, invoice.paid) to its webhook route, with duplicates, and
    # list its request name in the scenario's description.

    def _change(self, key: str, body: dict[str, str], name: str) -> None:
        with self.client.post(
            "/v1/subscriptions",
            json=body,
            headers={**self.headers, "Idempotency-Key": key},
            name=name,
            catch_response=True,
        ) as response:
            # 409: a downgrade refused by the plan's limits is an answer, not an error of the system.
            if response.status_code in (200, 409):
                response.success()


@events.init_command_line_parser.add_listener
def _no_options(parser: Any) -> None:
    """The plan comes from LOADTEST_PLAN, not from options."""
