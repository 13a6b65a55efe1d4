"""Billing's adapters for every family that bills (the API, the webhook, the processor, the jobs).

Outside local/test the ``BillingProvider`` is Stripe (no plan without payment); on the local stack and
in tests it is the manual provider, and checkout still goes through the Stripe client, pointed at the
local fake by ``STRIPE_API_BASE``. Stripe's keys are the app secrets' ``stripe_secret_key`` and
``stripe_webhook_secret``, read at each call (a rotation is followed without a redeploy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replyflow.settings import Settings

if TYPE_CHECKING:
    from replyflow.adapters.stripe_billing import StripeGateway
    from replyflow.services.billing import BillingUrls
    from replyflow.wiring.core import Clients


def stripe_gateway(settings: Settings, clients: Clients) -> StripeGateway:
    from replyflow.adapters.stripe_billing import StripeGateway

    def keys() -> tuple[str | None, str | None]:
        values = clients.app_secrets.get()
        key, hook = values.stripe_secret_key, values.stripe_webhook_secret
        return (key.get_secret_value() if key else None, hook.get_secret_value() if hook else None)

    return StripeGateway(keys, prices=settings.stripe_prices, api_base=settings.stripe_api_base)


def billing_urls(settings: Settings) -> BillingUrls:
    from replyflow.services.billing import BillingUrls

    base = settings.console_base_url.rstrip("/")
    return BillingUrls(
        success_url=f"{base}/billing?checkout=success",
        cancel_url=f"{base}/billing?checkout=canceled",
        return_url=f"{base}/billing",
    )
