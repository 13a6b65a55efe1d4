"""Instagram webhook entry point (API Gateway proxy events, REST API v1 shape).

``GET /webhooks/instagram``: the subscription handshake (200 with the raw challenge, 403 otherwise).
``POST /webhooks/stripe``: a Stripe event, verified with Stripe's library (``Stripe-Signature``), then
enqueued for the processor: 400 on a bad or missing signature, 200 ``{"received": "<event id>"}``
otherwise (``services/billing_intake.py``).

``POST /webhooks/instagram``: 401 on a bad or missing signature (nothing enqueued), 400 on a body
flagged ``isBase64Encoded`` that is not base64 or one ``replyflow.json_input`` refuses (not UTF-8 JSON,
``NaN``/``Infinity``, integers past 64 bits, nesting past its depth: ``malformed_json``), 200
otherwise, including unknown accounts and fields (logged and counted). Any other method is 405.

The proxy event is parsed by hand and no web framework is imported: every new instance pays its
imports as cold start, and webhook bursts start many instances at once (docs/architecture.md#cold-starts).
In Lambda the dependencies are ``wiring.webhook``'s pydantic-free root; the local stack and the tests
pass a ``PipelineDeps``.
"""

from __future__ import annotations

import base64
import binascii
import json
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import webhook.lean_imports  # noqa: F401 - first of ours: redis-py without its __init__
from replyflow.adapters.secrets import with_fresh_retry
from replyflow.errors import BillingSignatureError, MalformedJsonError, SignatureError
from replyflow.observability import MetricUnit, logger, metrics, tracer
from replyflow.services.intake import IntakeResult, intake, verify_handshake
from replyflow.wiring.webhook import webhook_deps

if TYPE_CHECKING:
    from replyflow.adapters.secrets import AppSecrets, SecretValues
    from replyflow.ports import BillingEventVerifier, QueuePublisher
    from replyflow.services.intake import RouteResolver
    from replyflow.wiring.roots import Handler, Roots

JSON_HEADERS = {"Content-Type": "application/json"}


class WebhookRoot(Protocol):
    """What this function reads of its root: ``wiring.webhook.WebhookDeps`` in Lambda, a
    ``PipelineDeps`` on the local stack and in tests."""

    @property
    def app_secrets(self) -> AppSecrets: ...

    @property
    def route_resolver(self) -> RouteResolver: ...

    @property
    def publisher(self) -> QueuePublisher: ...

    @property
    def billing_api(self) -> BillingEventVerifier: ...


def make_handler(deps: Callable[[], WebhookRoot]) -> Handler:
    """The entry point over the dependencies ``deps()`` returns (read at each invocation)."""

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        method = (event.get("httpMethod") or _http_v2_method(event) or "").upper()
        try:
            if method == "GET":
                return _handshake(event, deps())
            if method == "POST" and _is_stripe(event):
                return _deliver_stripe(event, deps())
            if method == "POST":
                return _deliver(event, deps())
            return _error(405, "method_not_allowed", f"{method or 'this method'} is not supported")
        finally:
            with warnings.catch_warnings():
                # A GET or a body that counted nothing has no metrics; that is not worth a warning.
                warnings.simplefilter("ignore", UserWarning)
                metrics.flush_metrics(raise_on_empty_metrics=False)

    return lambda_handler


def bind(roots: Roots) -> Handler:
    """This function on the local stack's dependencies."""
    return make_handler(lambda: roots.pipeline)


lambda_handler = make_handler(webhook_deps)


def _handshake(event: dict[str, Any], deps: WebhookRoot) -> dict[str, Any]:
    params = event.get("queryStringParameters") or {}
    secrets = deps.app_secrets
    challenge = verify_handshake(params, secrets.get().instagram_verify_token.get_secret_value())
    if challenge is None and params.get("hub.mode") == "subscribe":
        fresh = secrets.refresh()  # a rotated verify token; rate-limited, so a flood reads it rarely
        if fresh is not None:
            challenge = verify_handshake(params, fresh.instagram_verify_token.get_secret_value())
    if challenge is None:
        logger.warning("webhook handshake refused", extra={"mode": params.get("hub.mode")})
        return _error(403, "forbidden", "verification failed")
    return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": challenge}


def _deliver(event: dict[str, Any], deps: WebhookRoot) -> dict[str, Any]:
    try:
        body = _raw_body(event)
    except binascii.Error:
        return _error(400, "bad_request", "the body is flagged base64 but is not valid base64")
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    signature = headers.get("x-hub-signature-256")

    def deliver(values: SecretValues) -> IntakeResult:
        named = values.named_app_secrets
        return intake(
            body,
            signature,
            secrets=[secret for _name, secret in named],
            resolver=deps.route_resolver,
            publisher=deps.publisher,
            on_signature=lambda index: logger.debug("webhook signed", extra={"signed_with": named[index][0]}),
        )

    try:
        # The signature is checked before anything is routed or sent, so a retry with re-read app
        # secrets (rotated since they were cached) repeats nothing; an unsigned body is not retried.
        failures: tuple[type[Exception], ...] = (SignatureError,) if signature else ()
        result = with_fresh_retry(deps.app_secrets, deliver, failures)
    except SignatureError as exc:
        metrics.add_metric(name="WebhookSignatureRejected", unit=MetricUnit.Count, value=1)
        logger.warning("webhook signature rejected", extra={"reason": str(exc)})
        return _error(exc.status, exc.code, "the X-Hub-Signature-256 header does not match the body")
    except MalformedJsonError as exc:
        return _error(exc.status, exc.code, exc.message)
    metrics.add_metric(name="WebhookEventsEnqueued", unit=MetricUnit.Count, value=result.enqueued)
    for reason, count in result.counts.items():
        metrics.add_metric(name=f"WebhookDropped_{reason}", unit=MetricUnit.Count, value=count)
    if result.counts:
        logger.info("webhook events not routed", extra={"counts": dict(result.counts)})
    return {"statusCode": 200, "headers": JSON_HEADERS, "body": json.dumps({"received": result.enqueued})}


def _is_stripe(event: dict[str, Any]) -> bool:
    path = event.get("resource") or event.get("path") or event.get("rawPath") or ""
    return isinstance(path, str) and path.rstrip("/").endswith("/webhooks/stripe")


def _deliver_stripe(event: dict[str, Any], deps: WebhookRoot) -> dict[str, Any]:
    from replyflow.services.billing_intake import intake as billing_intake

    try:
        body = _raw_body(event)
    except binascii.Error:
        return _error(400, "bad_request", "the body is flagged base64 but is not valid base64")
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        event_id = billing_intake(
            body, headers.get("stripe-signature"), verifier=deps.billing_api, publisher=deps.publisher
        )
    except BillingSignatureError as exc:
        metrics.add_metric(name="BillingWebhookSignatureRejected", unit=MetricUnit.Count, value=1)
        logger.warning("stripe webhook signature rejected", extra={"reason": exc.message})
        return _error(exc.status, exc.code, exc.message)
    metrics.add_metric(name="BillingEventsEnqueued", unit=MetricUnit.Count, value=1)
    return {"statusCode": 200, "headers": JSON_HEADERS, "body": json.dumps({"received": event_id})}


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        # The signature covers the bytes Meta sent; API Gateway may hand them over base64-encoded.
        return base64.b64decode(body, validate=True)
    return body.encode() if isinstance(body, str) else bytes(body)


def _http_v2_method(event: dict[str, Any]) -> str | None:
    http = (event.get("requestContext") or {}).get("http") or {}
    method = http.get("method")
    return method if isinstance(method, str) else None


def _error(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    body = {"error": {"code": code, "message": message, "details": details}}
    return {"statusCode": status, "headers": JSON_HEADERS, "body": json.dumps(body)}
