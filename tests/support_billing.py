"""Billing test world: the Stripe fake in-process (no sockets) behind the real ``stripe`` client, the
API on it, and Stripe's events delivered through the real webhook and processor handlers.

    world = BillingWorld.on(api_env)
    owner = world.signup()
    world.checkout(owner, "pro")
    world.stripe("pay", owner)      # the fake pays; its signed events -> webhook -> queue -> processor
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from local.stripe_fake import StripeFake, in_process_client
from replyflow.adapters.stripe_billing import StripeGateway
from replyflow.db.engine import session_scope
from replyflow.db.repositories import billing as billing_repo
from replyflow.settings import Settings
from replyflow.wiring.pipeline import PipelineDeps, build_pipeline
from tests.support_pipeline import LocalQueues, lambda_context
from tests.unit.test_api_support import ApiEnv

SECRET_KEY = "sk_test_replyflow_unit"
WEBHOOK_SECRET = "whsec_replyflow_unit_tests"
PRICES = {"pro": "price_test_pro", "business": "price_test_business"}


@dataclass
class BillingWorld:
    env: ApiEnv
    fake: StripeFake
    gateway: StripeGateway
    queues: LocalQueues
    pipeline: PipelineDeps
    statuses: list[int] = field(default_factory=list)

    @classmethod
    def on(cls, env: ApiEnv, *, grace_seconds: int = 3600, settings: Settings | None = None) -> BillingWorld:
        fake = StripeFake(webhook_secret=WEBHOOK_SECRET, base_url="https://checkout.fake")
        gateway = StripeGateway(
            lambda: (SECRET_KEY, WEBHOOK_SECRET),
            prices=PRICES,
            api_base="https://api.stripe.fake",
            http_client=in_process_client(fake),
        )
        queues = LocalQueues()
        base = settings or env.settings
        pipeline_settings = base.model_copy(update={"billing_grace_seconds": grace_seconds})
        pipeline = build_pipeline(
            pipeline_settings, clients=env.deps.clients, publisher=queues, billing_api=gateway
        )
        env.use(billing_api=gateway)
        world = cls(env, fake, gateway, queues, pipeline)
        fake.deliver = world.deliver
        from processor.handler import make_handler

        # The processor functions of the template, on its queues; the root is read per batch, so
        # ``with_settings`` applies to the next delivery.
        queues.bind("processor", make_handler(lambda: world.pipeline))
        return world

    # API ------------------------------------------------------------------------------------------

    def signup(self, workspace: str = "Shop") -> dict[str, Any]:
        owner = self.env.signup(workspace)
        me = self.env.call("GET", "/v1/me", token=owner["access_token"])
        assert me.status == 200, me.body
        return {**owner, "tenant_id": me.body["tenant"]["id"], "token": owner["access_token"]}

    def checkout(self, owner: dict[str, Any], plan: str = "pro") -> Any:
        return self.env.call("POST", "/v1/billing/checkout", token=owner["token"], body={"plan_code": plan})

    def billing(self, owner: dict[str, Any]) -> dict[str, Any]:
        response = self.env.call("GET", "/v1/billing", token=owner["token"])
        assert response.status == 200, response.body
        return dict(response.body)

    def customer(self, owner: dict[str, Any]) -> str:
        with session_scope(self.env.deps.clients.writer_sessions) as session:
            ref = billing_repo.customer_ref(session, owner["tenant_id"])
        assert ref is not None
        return ref

    # Stripe's side --------------------------------------------------------------------------------

    def webhook(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        from webhook.handler import make_handler

        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        event = {
            "httpMethod": "POST",
            "resource": "/webhooks/stripe",
            "path": "/webhooks/stripe",
            "headers": headers,
            "body": payload.decode(),
            "isBase64Encoded": False,
        }
        return make_handler(lambda: self.pipeline)(event, lambda_context("WebhookFunction"))

    def deliver(self, payload: bytes, signature: str) -> int:
        status = int(self.webhook(payload, signature)["statusCode"])
        self.statuses.append(status)
        return status

    def process(self) -> None:
        """Delivers every queued event to the processor through the template's queues; none fails."""
        stats = self.queues.drain()
        assert stats.failed == 0, stats
        assert self.queues.dead_lettered() == []

    def stripe(self, action: str, owner: dict[str, Any], **options: Any) -> dict[str, Any]:
        """The fake pays / fails / cancels for the owner's customer; delivers and processes the events."""
        customer = self.customer(owner)
        events = getattr(self.fake, action)(customer)
        emitted = self.fake.emit(events, **options)
        self.process()
        return emitted

    def replay(self, emitted: dict[str, Any]) -> None:
        """Delivers the same signed events again (Stripe's retries), then processes them."""
        for event in emitted["events"]:
            self.deliver(event["payload"].encode(), event["signature"])
        self.process()


def forged(payload: dict[str, Any]) -> tuple[bytes, str]:
    from local.stripe_fake import sign

    raw = json.dumps(payload).encode()
    return raw, sign(raw, "whsec_not_the_secret")


def with_settings(world: BillingWorld, **changes: Any) -> None:
    world.pipeline = replace(world.pipeline, settings=world.pipeline.settings.model_copy(update=changes))
