"""Stripe behind the billing ports, through the official ``stripe`` library.

- :class:`StripeGateway` is the ``BillingGateway``: customers (created once per tenant under the
  idempotency key ``replyflow-customer-<tenant>``), Checkout Sessions, Customer Portal sessions,
  subscriptions and invoices, and webhook verification with ``stripe.Webhook.construct_event``
  (tolerance 5 minutes, over the raw body).
- :class:`StripeBilling` is the ``BillingProvider`` of deployed stacks: a paid plan is never granted
  because a client asked (``PaymentRequiredError``: use checkout), a cancellation is Stripe's
  ``cancel_at_period_end``.

Keys are read at each call from ``keys()`` (the app secrets, re-read after rotation), and ``stripe`` is
imported at the first call, never at import: the functions that never bill never pay for it.
``api_base`` points the client at the local fake (``local/stripe_fake``); ``http_client`` lets the unit
tests answer in-process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from replyflow.adapters.secrets import SecretsUnavailableError
from replyflow.errors import BillingProviderError, BillingSignatureError, PaymentRequiredError
from replyflow.ports import BillingChange, BillingGateway, ProviderInvoice, ProviderSubscription

WEBHOOK_TOLERANCE_SECONDS = 300
NETWORK_RETRIES = 2
TIMEOUT_SECONDS = 10.0


def customer_idempotency_key(tenant_id: str) -> str:
    return f"replyflow-customer-{tenant_id}"


def _naive_utc(epoch: Any) -> datetime:
    return datetime.fromtimestamp(int(epoch or 0), UTC).replace(tzinfo=None)


class StripeGateway:
    def __init__(
        self,
        keys: Callable[[], tuple[str | None, str | None]],
        *,
        prices: Mapping[str, str],
        api_base: str | None = None,
        http_client: Any = None,
    ) -> None:
        """``keys()``: (secret key, webhook signing secret); ``prices``: plan code -> price id."""
        self._keys = keys
        self._prices = dict(prices)
        self._plans_by_price = {price: plan for plan, price in prices.items()}
        self._api_base = api_base
        self._http_client = http_client
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    # The client ------------------------------------------------------------------------------------

    def _client(self) -> Any:
        secret_key, _ = self._keys()
        if not secret_key:
            raise SecretsUnavailableError("STRIPE_SECRET_KEY is not configured")
        with self._lock:
            client = self._clients.get(secret_key)
            if client is None:
                import stripe

                options: dict[str, Any] = {"max_network_retries": NETWORK_RETRIES}
                if self._api_base:
                    options["base_addresses"] = {"api": self._api_base.rstrip("/")}
                http = self._http_client or stripe.HTTPXClient(
                    timeout=TIMEOUT_SECONDS, allow_sync_methods=True
                )
                client = stripe.StripeClient(secret_key, http_client=http, **options)
                self._clients = {secret_key: client}  # a rotated key replaces the old client
            return client

    def _call(self, what: str, call: Callable[[Any], Any]) -> Any:
        import stripe

        try:
            return call(self._client().v1)
        except stripe.StripeError as error:
            code = getattr(error, "code", None) or type(error).__name__
            raise BillingProviderError(
                f"Stripe refused {what}: {code}", code="billing_provider_error"
            ) from None

    # BillingGateway --------------------------------------------------------------------------------

    def create_customer(self, tenant_id: str, *, email: str, name: str) -> str:
        params = {"email": email, "name": name, "metadata": {"tenant_id": tenant_id}}
        options = {"idempotency_key": customer_idempotency_key(tenant_id)}
        customer = self._call("the customer", lambda v1: v1.customers.create(params, options))
        return str(customer.id)

    def price_of(self, plan_code: str) -> str:
        price = self._prices.get(plan_code)
        if not price:
            raise PaymentRequiredError(
                f"the {plan_code} plan has no Stripe price configured", code="no_price"
            )
        return price

    def checkout_url(
        self, customer_ref: str, tenant_id: str, plan_code: str, *, success_url: str, cancel_url: str
    ) -> str:
        params = {
            "mode": "subscription",
            "customer": customer_ref,
            "client_reference_id": tenant_id,
            "line_items": [{"price": self.price_of(plan_code), "quantity": 1}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": {"tenant_id": tenant_id, "plan_code": plan_code},
            "subscription_data": {"metadata": {"tenant_id": tenant_id, "plan_code": plan_code}},
        }
        session = self._call("the checkout session", lambda v1: v1.checkout.sessions.create(params))
        return str(session.url)

    def portal_url(self, customer_ref: str, *, return_url: str) -> str:
        params = {"customer": customer_ref, "return_url": return_url}
        session = self._call("the portal session", lambda v1: v1.billing_portal.sessions.create(params))
        return str(session.url)

    def subscription(self, subscription_ref: str) -> ProviderSubscription:
        sub = self._call("the subscription", lambda v1: v1.subscriptions.retrieve(subscription_ref))
        return self.subscription_of(_as_dict(sub))

    def subscription_of(self, sub: Mapping[str, Any]) -> ProviderSubscription:
        items = ((sub.get("items") or {}).get("data")) or []
        item = items[0] if items else {}
        price = (item.get("price") or {}).get("id")
        # Since API 2025-03-31 the period lives on the items; older versions have it on the subscription.
        start = item.get("current_period_start") or sub.get("current_period_start")
        end = item.get("current_period_end") or sub.get("current_period_end")
        return ProviderSubscription(
            id=str(sub["id"]),
            customer_ref=str(sub.get("customer") or ""),
            status=str(sub.get("status") or ""),
            plan_code=self._plans_by_price.get(str(price)) if price else None,
            current_period_start=_naive_utc(start),
            current_period_end=_naive_utc(end),
            cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        )

    def invoices(self, customer_ref: str, *, limit: int) -> list[ProviderInvoice]:
        params = {"customer": customer_ref, "limit": limit}
        page = self._call("the invoices", lambda v1: v1.invoices.list(params))
        return [_invoice(_as_dict(inv)) for inv in page.data]

    def cancel_at_period_end(self, subscription_ref: str) -> None:
        params = {"cancel_at_period_end": True}
        self._call("the cancellation", lambda v1: v1.subscriptions.update(subscription_ref, params))

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        import stripe

        _, webhook_secret = self._keys()
        if not webhook_secret:
            raise SecretsUnavailableError("STRIPE_WEBHOOK_SECRET is not configured")
        if not signature:
            raise BillingSignatureError("missing Stripe-Signature")
        try:
            stripe.Webhook.construct_event(
                payload, signature, webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError:
            raise BillingSignatureError("the Stripe-Signature header does not match the body") from None
        except ValueError:
            raise BillingSignatureError("the body is not a Stripe event") from None
        event = json.loads(payload)
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise BillingSignatureError("the body is not a Stripe event")
        return event


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    return dict(obj.to_dict())


def _invoice(inv: Mapping[str, Any]) -> ProviderInvoice:
    return ProviderInvoice(
        id=str(inv["id"]),
        number=inv.get("number"),
        status=inv.get("status"),
        amount_due=int(inv.get("amount_due") or 0),
        amount_paid=int(inv.get("amount_paid") or 0),
        currency=str(inv.get("currency") or "usd"),
        created=_naive_utc(inv.get("created")),
        hosted_invoice_url=inv.get("hosted_invoice_url"),
    )


class StripeBilling:
    """The ``BillingProvider`` outside local/test: no plan without payment."""

    name = "stripe"

    def __init__(self, gateway: BillingGateway) -> None:
        self._gateway = gateway

    def change_plan(self, tenant_id: str, plan_code: str) -> BillingChange:
        raise PaymentRequiredError(
            f"the {plan_code} plan starts when Stripe confirms the payment: "
            "POST /v1/billing/checkout for a checkout URL",
            details={"checkout": "/v1/billing/checkout"},
        )

    def cancel(self, tenant_id: str, provider_ref: str | None) -> None:
        if provider_ref and provider_ref.startswith("sub_"):
            self._gateway.cancel_at_period_end(provider_ref)
