"""/v1/billing: the plan, period, usage against each limit, invoices and renewal; Stripe Checkout and
Customer Portal URLs (owner). A plan changes only when Stripe's webhook says so (services/billing.py)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from api.context import deps, principal
from api.responses import documented
from replyflow.services.billing import BillingOverview, CheckoutRequest, RedirectView

router = Router()


@router.get(
    "",
    tags=["billing"],
    summary="Plan, period, usage against each limit, invoices and the next renewal",
    responses=documented(200),
)
def overview() -> BillingOverview:
    return deps(router).billing_service.overview(principal(router))


@router.post(
    "/checkout",
    tags=["billing"],
    summary="A Stripe Checkout URL for a paid plan (owner); the plan starts when Stripe confirms payment",
    responses=documented(200, 402, 409, 502, body=True),
)
def checkout(body: CheckoutRequest) -> RedirectView:
    return deps(router).billing_service.checkout(principal(router), body)


@router.post(
    "/portal",
    tags=["billing"],
    summary="A Stripe Customer Portal URL (owner): payment method, invoices, plan changes, cancellation",
    responses=documented(200, 404, 502),
)
def portal() -> RedirectView:
    return deps(router).billing_service.portal(principal(router))
