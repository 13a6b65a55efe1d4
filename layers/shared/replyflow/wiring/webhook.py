"""The webhook function's composition root in Lambda: :func:`webhook_deps`, pydantic-free.

A webhook instance's first event is a handshake or a signed body routed from the Redis cache: it
reads its settings through :class:`~replyflow.settings_view.WebhookSettings` and its secrets as
:class:`~replyflow.adapters.secrets.SecretValues`, so it imports no pydantic, no SQLAlchemy, no boto3
(but to publish or read Secrets Manager) and no httpx (docs/architecture.md#cold-starts). What only a
rarer path needs comes from the full pipeline root (``wiring.pipeline.process_deps``, built from
``Settings``) at its first use: the database on a route-cache miss, Stripe for a billing event.

The handler (``functions/webhook/handler.py``) takes any ``WebhookRoot`` (its view of a root): this
one, or a ``PipelineDeps`` (the local stack, the tests).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from replyflow.services.intake import AccountRoute, RouteResolver
from replyflow.settings_view import WebhookSettings, needs_settings
from replyflow.wiring.core import PublisherOnUse, ViewRoot, aws_client, once, sqs_publisher

if TYPE_CHECKING:
    from replyflow.ports import BillingEventVerifier, QueuePublisher
    from replyflow.wiring.pipeline import PipelineDeps


class WebhookDeps(ViewRoot):
    """The webhook's adapters over ``settings``, each built on first read; ``full()`` gives the
    pipeline root for a route-cache miss and Stripe (built at its first call)."""

    def __init__(self, settings: WebhookSettings, full: Callable[[], PipelineDeps]) -> None:
        self.settings = settings
        self._full = full

    @once
    def route_resolver(self) -> RouteResolver:
        return RouteResolver(self.cache, self._load_route)

    def _load_route(self, ig_user_id: str) -> AccountRoute | None:
        """A route-cache miss: the full root's loader (the reader database)."""
        return self._full().route_loader(ig_user_id)

    @once
    def publisher(self) -> QueuePublisher:
        """SQS over ``QUEUE_URLS``, resolved at the first publish (boto3 is not imported before)."""
        s = self.settings
        return PublisherOnUse(lambda: sqs_publisher(s.queue_urls, lambda: aws_client(s, "sqs")))

    @property
    def billing_api(self) -> BillingEventVerifier:
        return _FullVerifier(self._full)


class _FullVerifier:
    """The pipeline root's Stripe verifier, built at the first billing event."""

    def __init__(self, full: Callable[[], PipelineDeps]) -> None:
        self._full = full

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        return self._full().billing_api.verify_event(payload, signature)


@cache
def webhook_deps() -> WebhookDeps | PipelineDeps:
    """This instance's root, built at the first invocation: the pipeline root itself for a deployed
    stack whose secrets are in the environment (``Settings`` vets them: ``needs_settings``)."""
    from replyflow.wiring.pipeline import process_deps

    settings = WebhookSettings.from_environ()
    if needs_settings(settings):
        return process_deps()
    return WebhookDeps(settings, process_deps)
