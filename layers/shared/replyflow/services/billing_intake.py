"""Payment-provider webhook intake: verify, enqueue, answer (docs/billing.md).

Invariants:
- the signature is checked by the provider's library over the exact bytes received (Stripe:
  ``Webhook.construct_event``, 5 minutes' tolerance) before anything is parsed or enqueued; a bad or
  missing one is a 400 with nothing enqueued;
- the verified event goes to the events queue as a ``BillingEventMessage`` and the webhook answers at
  once; the processor applies it (``services.billing.apply_event``), with the queue's retries and DLQ;
  a publish failure propagates (a 5xx: the provider retries the delivery, the event id dedupes it).

Imports stay lean: no SQLAlchemy; the provider's library is imported by the verifier on first use.
"""

from __future__ import annotations

from replyflow.domain.messages import BILLING_QUEUE, BillingEventMessage
from replyflow.ports import BillingEventVerifier, QueuePublisher


def intake(
    body: bytes, signature: str | None, *, verifier: BillingEventVerifier, publisher: QueuePublisher
) -> str:
    """Verifies and enqueues one delivery; returns the event id. ``BillingSignatureError`` on a bad
    signature."""
    event = verifier.verify_event(body, signature)
    publisher.publish(BILLING_QUEUE, [BillingEventMessage(event=event).to_json()])
    return str(event["id"])
