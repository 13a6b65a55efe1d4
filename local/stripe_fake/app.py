"""A Stripe-shaped fake: the few endpoints Replyflow's Stripe client calls, with Stripe's request
encoding (form-encoded, ``a[b][0][c]=v``), response shapes, error envelope and idempotency keys, plus
control routes that play the customer and Stripe's billing engine and emit *signed* webhook events.

API (what ``adapters/stripe_billing.py`` calls through the official library):

- ``POST /v1/customers`` (``Idempotency-Key`` replays the first answer), ``GET /v1/customers/{id}``
- ``POST /v1/checkout/sessions``, ``POST /v1/billing_portal/sessions``
- ``GET /v1/subscriptions/{id}``, ``POST /v1/subscriptions/{id}`` (``cancel_at_period_end``)
- ``GET /v1/invoices?customer=``

Control (JSON bodies; each answers the events it emitted, each with its payload and signature):

- ``POST /_fake/pay {"customer"}``: completes the customer's open checkout session (a new active
  subscription and a paid invoice: ``checkout.session.completed``, ``customer.subscription.created``,
  ``invoice.paid``), or pays the open invoice of a past-due subscription (``invoice.paid``,
  ``customer.subscription.updated``);
- ``POST /_fake/fail {"customer"}``: the renewal payment fails (``invoice.payment_failed``,
  ``customer.subscription.updated`` with ``past_due``);
- ``POST /_fake/cancel {"customer"}``: the subscription ends (``customer.subscription.deleted``);
- options on each: ``"duplicates": n`` delivers every event n more times, ``"reverse": true`` delivers
  them in reverse order, ``"deliver": false`` only returns them;
- ``GET /_fake/state``: counts of customers, subscriptions and events (benches assert on them).

Events are signed like Stripe's (``Stripe-Signature: t=<unix>,v1=<HMAC-SHA256(secret, "t.payload")>``)
and POSTed to ``webhook_url`` by ``deliver`` (the server's HTTP poster, or a function in tests).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from local.sandbox.protocol import Request, Response

PERIOD_S = 30 * 86400
Deliver = Callable[[bytes, str], int]


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``payload``."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def decode_form(body: bytes) -> dict[str, Any]:
    """Stripe's form encoding (``metadata[k]=v``, ``line_items[0][price]=p``) back into JSON."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for part, nxt in itertools.pairwise(parts):
            child_is_list = nxt.isdigit()
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append([] if child_is_list else {})
                node = node[index]
            else:
                node = node.setdefault(part, [] if child_is_list else {})
        last = parts[-1] if parts else key
        if isinstance(node, list):
            index = int(last)
            while len(node) <= index:
                node.append(None)
            node[index] = value
        else:
            node[last] = value
    return root


def _error(
    status: int, message: str, *, code: str = "resource_missing", kind: str = "invalid_request_error"
) -> Response:
    return Response(status, {"error": {"type": kind, "code": code, "message": message}})


@dataclass
class FakeState:
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotent: dict[tuple[str, str], Response] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)


class StripeFake:
    def __init__(
        self,
        *,
        webhook_secret: str,
        base_url: str = "http://127.0.0.1",
        deliver: Deliver | None = None,
        clock: Callable[[], float] = time.time,
        state_path: Path | None = None,
    ) -> None:
        self.webhook_secret = webhook_secret
        self.base_url = base_url
        self.deliver = deliver
        self.clock = clock
        self.state = FakeState()
        self.lock = threading.RLock()
        self.requests = 0
        self.state_path = state_path
        if state_path is not None and state_path.exists():
            self._load(json.loads(state_path.read_text()))

    # Persistence (the local stack: a restart keeps the customers the database names) ---------------

    def _load(self, data: dict[str, Any]) -> None:
        for name in ("customers", "sessions", "subscriptions", "invoices"):
            setattr(self.state, name, dict(data.get(name) or {}))
        self.state.events = list(data.get("events") or [])
        self.state.counter = itertools.count(int(data.get("counter") or 0))
        for key, answer in (data.get("idempotent") or {}).items():
            path, _, idem = key.partition("|")
            self.state.idempotent[(path, idem)] = Response(int(answer["status"]), answer["body"])

    def save(self) -> None:
        if self.state_path is None:
            return
        with self.lock:
            counter = next(self.state.counter)
            self.state.counter = itertools.count(counter)
            data = {
                "customers": self.state.customers,
                "sessions": self.state.sessions,
                "subscriptions": self.state.subscriptions,
                "invoices": self.state.invoices,
                "events": self.state.events[-500:],
                "counter": counter,
                "idempotent": {
                    f"{path}|{key}": {"status": r.status, "body": r.body}
                    for (path, key), r in self.state.idempotent.items()
                },
            }
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(self.state_path)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self.state.counter):06d}{int(self.clock() * 1000) % 10**8:08d}"

    # Dispatch -------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/_fake/"):
            return self._control(request)  # delivers its events outside the lock
        with self.lock:
            self.requests += 1
            if not (request.header("authorization") or "").startswith("Bearer sk_"):
                return _error(
                    401, "Invalid API Key provided", code="api_key_invalid", kind="invalid_request_error"
                )
            key = request.header("idempotency-key")
            if request.method == "POST" and key and (request.path, key) in self.state.idempotent:
                return self.state.idempotent[(request.path, key)]
            response = self._api(request)
            if request.method == "POST" and key and response.status < 500:
                self.state.idempotent[(request.path, key)] = response
            if request.method == "POST":
                self.save()
            return response

    def _api(self, request: Request) -> Response:
        params = decode_form(request.body) if request.method == "POST" else dict(request.query)
        path, method = request.path.rstrip("/"), request.method
        if path == "/v1/customers" and method == "POST":
            return self._create_customer(params)
        if path == "/v1/checkout/sessions" and method == "POST":
            return self._create_session(params)
        if path == "/v1/billing_portal/sessions" and method == "POST":
            return self._create_portal(params)
        if path == "/v1/invoices" and method == "GET":
            return self._list_invoices(params)
        match = re.fullmatch(r"/v1/(customers|subscriptions)/([A-Za-z0-9_]+)", path)
        if match:
            collection = getattr(self.state, match.group(1))
            found = collection.get(match.group(2))
            if found is None:
                return _error(404, f"No such {match.group(1)[:-1]}: '{match.group(2)}'")
            if method == "POST" and match.group(1) == "subscriptions" and "cancel_at_period_end" in params:
                found["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
            return Response(200, found)
        return _error(404, f"Unrecognized request URL ({method}: {path})", code="unrecognized_url")

    def _create_customer(self, params: dict[str, Any]) -> Response:
        cid = self._id("cus")
        customer = {
            "id": cid,
            "object": "customer",
            "email": params.get("email"),
            "name": params.get("name"),
            "metadata": params.get("metadata") or {},
            "created": int(self.clock()),
        }
        self.state.customers[cid] = customer
        return Response(200, customer)

    def _create_session(self, params: dict[str, Any]) -> Response:
        customer = params.get("customer")
        if customer not in self.state.customers:
            return _error(400, f"No such customer: '{customer}'")
        items = params.get("line_items") or []
        if not items or not (items[0] or {}).get("price"):
            return _error(400, "Missing required param: line_items[0][price].", code="parameter_missing")
        sid = self._id("cs")
        session = {
            "id": sid,
            "object": "checkout.session",
            "mode": params.get("mode"),
            "status": "open",
            "customer": customer,
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata") or {},
            "price": items[0]["price"],
            "subscription": None,
            "url": f"{self.base_url}/checkout/{sid}",
            "success_url": params.get("success_url"),
        }
        self.state.sessions[sid] = session
        return Response(200, session)

    def _create_portal(self, params: dict[str, Any]) -> Response:
        customer = params.get("customer")
        if customer not in self.state.customers:
            return _error(400, f"No such customer: '{customer}'")
        pid = self._id("bps")
        portal = {
            "id": pid,
            "object": "billing_portal.session",
            "customer": customer,
            "url": f"{self.base_url}/portal/{pid}",
            "return_url": params.get("return_url"),
        }
        return Response(200, portal)

    def _list_invoices(self, params: dict[str, Any]) -> Response:
        customer = params.get("customer")
        rows = [i for i in self.state.invoices.values() if i["customer"] == customer]
        rows.sort(key=lambda i: i["created"], reverse=True)
        limit = int(params.get("limit") or 10)
        return Response(
            200,
            {"object": "list", "url": "/v1/invoices", "has_more": len(rows) > limit, "data": rows[:limit]},
        )

    # Control --------------------------------------------------------------------------------------

    def _control(self, request: Request) -> Response:
        if request.path == "/_fake/state" and request.method == "GET":
            with self.lock:
                return Response(200, self.summary())
        try:
            body = request.json()
        except ValueError:
            return _error(400, "the body must be JSON", code="bad_request")
        actions = {"/_fake/pay": self.pay, "/_fake/fail": self.fail, "/_fake/cancel": self.cancel}
        action = actions.get(request.path)
        if action is None or request.method != "POST" or not isinstance(body, dict):
            return _error(404, "no such control route", code="unrecognized_url")
        customer = body.get("customer")
        with self.lock:
            if customer not in self.state.customers:
                return _error(404, f"No such customer: '{customer}'")
            try:
                events = action(str(customer))
            except LookupError as missing:
                return _error(409, str(missing), code="nothing_to_do")
            self.save()
        return Response(200, self.emit(events, **_options(body)))

    def summary(self) -> dict[str, Any]:
        per_customer: dict[str, int] = {}
        for sub in self.state.subscriptions.values():
            per_customer[sub["customer"]] = per_customer.get(sub["customer"], 0) + 1
        return {
            "customers": len(self.state.customers),
            "subscriptions": len(self.state.subscriptions),
            "subscriptions_per_customer_max": max(per_customer.values(), default=0),
            "events": len(self.state.events),
            "requests": self.requests,
        }

    def _latest_subscription(self, customer: str) -> dict[str, Any]:
        subs = [s for s in self.state.subscriptions.values() if s["customer"] == customer]
        if not subs:
            raise LookupError("the customer has no subscription")
        return max(subs, key=lambda s: s["created"])

    def pay(self, customer: str) -> list[dict[str, Any]]:
        with self.lock:
            open_sessions = [
                s for s in self.state.sessions.values() if s["customer"] == customer and s["status"] == "open"
            ]
            if open_sessions:
                return self._complete(open_sessions[-1])
            sub = self._latest_subscription(customer)
            if sub["status"] not in ("past_due", "unpaid"):
                raise LookupError("nothing to pay: no open checkout session and no past-due subscription")
            sub["status"] = "active"
            invoice = self._invoice(sub, paid=True)
            return [self._event("invoice.paid", invoice), self._event("customer.subscription.updated", sub)]

    def _complete(self, session: dict[str, Any]) -> list[dict[str, Any]]:
        now = int(self.clock())
        sub_id = self._id("sub")
        item = {
            "id": self._id("si"),
            "object": "subscription_item",
            "price": {"id": session["price"], "object": "price"},
            "quantity": 1,
            "current_period_start": now,
            "current_period_end": now + PERIOD_S,
        }
        sub = {
            "id": sub_id,
            "object": "subscription",
            "customer": session["customer"],
            "status": "active",
            "cancel_at_period_end": False,
            "created": now,
            "metadata": session.get("metadata") or {},
            "items": {"object": "list", "data": [item]},
        }
        self.state.subscriptions[sub_id] = sub
        session.update(status="complete", subscription=sub_id)
        invoice = self._invoice(sub, paid=True)
        return [
            self._event("checkout.session.completed", session),
            self._event("customer.subscription.created", sub),
            self._event("invoice.paid", invoice),
        ]

    def fail(self, customer: str) -> list[dict[str, Any]]:
        with self.lock:
            sub = self._latest_subscription(customer)
            if sub["status"] == "canceled":
                raise LookupError("the subscription is canceled")
            sub["status"] = "past_due"
            invoice = self._invoice(sub, paid=False)
            return [
                self._event("invoice.payment_failed", invoice),
                self._event("customer.subscription.updated", sub),
            ]

    def cancel(self, customer: str) -> list[dict[str, Any]]:
        with self.lock:
            sub = self._latest_subscription(customer)
            sub["status"] = "canceled"
            sub["canceled_at"] = int(self.clock())
            return [self._event("customer.subscription.deleted", sub)]

    def _invoice(self, sub: dict[str, Any], *, paid: bool) -> dict[str, Any]:
        iid = self._id("in")
        amount = 2900 if "pro" in sub["items"]["data"][0]["price"]["id"] else 9900
        invoice = {
            "id": iid,
            "object": "invoice",
            "number": f"RF-{len(self.state.invoices) + 1:04d}",
            "customer": sub["customer"],
            "status": "paid" if paid else "open",
            "amount_due": amount,
            "amount_paid": amount if paid else 0,
            "currency": "usd",
            "created": int(self.clock()),
            "hosted_invoice_url": f"{self.base_url}/invoices/{iid}",
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub["id"]}},
        }
        self.state.invoices[iid] = invoice
        return invoice

    def _event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        event = {
            "id": self._id("evt"),
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": int(self.clock()),
            "type": kind,
            "livemode": False,
            "data": {"object": json.loads(json.dumps(obj))},
        }
        self.state.events.append(event)
        return event

    # Delivery -------------------------------------------------------------------------------------

    def signed(self, event: dict[str, Any]) -> tuple[bytes, str]:
        payload = json.dumps(event, separators=(",", ":")).encode()
        return payload, sign(payload, self.webhook_secret, int(self.clock()))

    def emit(
        self,
        events: list[dict[str, Any]],
        *,
        duplicates: int = 0,
        reverse: bool = False,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """Signs ``events`` and, unless ``deliver`` is false, POSTs each (``1 + duplicates`` times)."""
        order = list(reversed(events)) if reverse else list(events)
        signed = [(event, *self.signed(event)) for event in order]
        statuses: list[int] = []
        if deliver and self.deliver is not None:
            for _ in range(1 + max(duplicates, 0)):
                for _event, payload, signature in signed:
                    statuses.append(self.deliver(payload, signature))
        return {
            "events": [
                {"id": e["id"], "type": e["type"], "payload": p.decode(), "signature": s}
                for e, p, s in signed
            ],
            "deliveries": statuses,
        }


def _options(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "duplicates": int(body.get("duplicates") or 0),
        "reverse": bool(body.get("reverse")),
        "deliver": body.get("deliver", True) is not False,
    }
