"""``replyflow simulate stripe paid|failed|canceled --tenant SLUG``: the Stripe fake plays the customer.

The tenant's Stripe customer is read from the stack's database (``billing_customers``; a checkout
creates it), then the fake's control route pays the open checkout session (or the past-due invoice),
fails the renewal payment or cancels the subscription, and delivers the signed events to the running
stack's ``/webhooks/stripe``. ``--duplicates N`` delivers each event N more times, ``--reverse`` in
reverse order: the state must come out the same.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

ACTIONS = {"paid": "pay", "failed": "fail", "canceled": "cancel"}


def register(kinds: Any) -> None:
    stripe = kinds.add_parser(
        "stripe", help="the Stripe fake pays, fails a payment or cancels (signed events)"
    )
    stripe.add_argument("outcome", choices=sorted(ACTIONS), help="what Stripe reports")
    stripe.add_argument("--tenant", required=True, help="the workspace's slug")
    stripe.add_argument("--duplicates", type=int, default=0, help="deliver every event N more times")
    stripe.add_argument("--reverse", action="store_true", help="deliver the events in reverse order")
    stripe.add_argument("--json", action="store_true", help="print the fake's answer as JSON")
    stripe.set_defaults(func=cmd_simulate_stripe)


def customer_of(settings: Any, slug: str) -> str | None:
    from replyflow.db.engine import session_scope
    from replyflow.db.repositories import billing, tenants
    from replyflow.wiring.core import Clients

    with session_scope(Clients(settings).writer_sessions) as session:
        tenant = tenants.by_slug(session, slug)
        if tenant is None:
            raise LookupError(f"no workspace with the slug {slug!r}")
        return billing.customer_ref(session, tenant.id)


def cmd_simulate_stripe(args: argparse.Namespace) -> int:
    import httpx

    from local.cli import _settings

    settings = _settings()
    if not settings.stripe_api_base:
        print("replyflow: no Stripe fake: start the stack with `replyflow run`", file=sys.stderr)
        return 1
    try:
        customer = customer_of(settings, args.tenant)
    except LookupError as missing:
        print(f"replyflow: {missing}", file=sys.stderr)
        return 1
    if customer is None:
        print(
            f"replyflow: {args.tenant} has no Stripe customer yet: POST /v1/billing/checkout first",
            file=sys.stderr,
        )
        return 1
    body = {"customer": customer, "duplicates": args.duplicates, "reverse": args.reverse}
    url = f"{settings.stripe_api_base.rstrip('/')}/_fake/{ACTIONS[args.outcome]}"
    try:
        response = httpx.post(url, json=body, timeout=30)
    except httpx.HTTPError as error:
        print(f"replyflow: the Stripe fake at {url} did not answer: {error}", file=sys.stderr)
        return 1
    answer = response.json()
    if args.json:
        print(json.dumps(answer, indent=2))
    if response.status_code != 200:
        print(f"replyflow: {answer.get('error', {}).get('message', response.text)}", file=sys.stderr)
        return 1
    if not args.json:
        for event, status in zip(
            answer["events"] * (1 + args.duplicates), answer["deliveries"], strict=False
        ):
            print(f"{event['type']:<32} {event['id']}  -> /webhooks/stripe {status}")
    return 0 if all(status == 200 for status in answer["deliveries"]) else 1
