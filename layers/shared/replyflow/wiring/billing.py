"""Billing's adapters for every family that bills (the API, the webhook, the processor, the jobs).

Outside local/test the ``BillingProvider`` is Stripe (no plan without payment); on the local stack and
in tests it is the manual provider, and checkout still goes through the Stripe client, pointed at the
local fake by ``STRIPE_API_BASE``. Stripe's keys are the app secrets' ``stripe_secret_key`` and
``stripe_webhook_secret``, read at each call (a rotation is followed without a redeploy).

The roots' ``billing_api`` port is :class:`StripeOnUse` unless a test passes its own gateway: the
adapter module is imported at the first billing call, so a function that never bills never loads it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from replyflow.adapters.stripe_billing import StripeGateway
    from replyflow.ports import BillingGateway, ProviderInvoice, ProviderSubscription
    from replyflow.services.billing import BillingUrls
    from replyflow.settings import Settings
    from replyflow.wiring.core import Clients


def stripe_gateway(settings: Settings, clients: Clients) -> StripeGateway:
    from replyflow.adapters.stripe_billing import StripeGateway

    def keys() -> tuple[str | None, str | None]:
        values = clients.app_secrets.get()
        key, hook = values.stripe_secret_key, values.stripe_webhook_secret
        return (key.get_secret_value() if key else None, hook.get_secret_value() if hook else None)

    return StripeGateway(keys, prices=settings.stripe_prices, api_base=settings.stripe_api_base)


class StripeOnUse:
    """The Stripe gateway (or its local fake, by ``STRIPE_API_BASE``), built at its first call."""

    def __init__(self, settings: Settings | Callable[[], Settings], clients: Clients) -> None:
        """``settings`` may be a callable: the API's root builds its ``Settings`` at their first read."""
        self._settings = settings
        self._clients = clients
        self._lock = threading.Lock()
        self._gateway: BillingGateway | None = None

    def _real(self) -> BillingGateway:
        with self._lock:
            if self._gateway is None:
                s = self._settings
                self._gateway = stripe_gateway(s() if callable(s) else s, self._clients)
            return self._gateway

    def create_customer(self, tenant_id: str, *, email: str, name: str) -> str:
        return self._real().create_customer(tenant_id, email=email, name=name)

    def checkout_url(
        self, customer_ref: str, tenant_id: str, plan_code: str, *, success_url: str, cancel_url: str
    ) -> str:
        return self._real().checkout_url(
            customer_ref, tenant_id, plan_code, success_url=success_url, cancel_url=cancel_url
        )

    def portal_url(self, customer_ref: str, *, return_url: str) -> str:
        return self._real().portal_url(customer_ref, return_url=return_url)

    def subscription(self, subscription_ref: str) -> ProviderSubscription:
        return self._real().subscription(subscription_ref)

    def invoices(self, customer_ref: str, *, limit: int) -> list[ProviderInvoice]:
        return self._real().invoices(customer_ref, limit=limit)

    def cancel_at_period_end(self, subscription_ref: str) -> None:
        self._real().cancel_at_period_end(subscription_ref)

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        return self._real().verify_event(payload, signature)


def billing_urls(console_base_url: str) -> BillingUrls:
    """Checkout and the portal return to the console's billing page."""
    from replyflow.services.billing import BillingUrls

    base = console_base_url.rstrip("/")
    return BillingUrls(
        success_url=f"{base}/billing?checkout=success",
        cancel_url=f"{base}/billing?checkout=canceled",
        return_url=f"{base}/billing",
    )
