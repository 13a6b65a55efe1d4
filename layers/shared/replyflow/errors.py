"""Typed errors. Services raise these; the API maps them to HTTP in one place; workers let a record fail.

Every error carries a stable machine-readable ``code`` and a message a person can act on.
"""

from __future__ import annotations

from typing import Any


class ReplyflowError(Exception):
    code = "internal_error"
    status = 500

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code


class ValidationError(ReplyflowError):
    code = "validation_error"
    status = 422


class BadRequestError(ReplyflowError):
    code = "bad_request"
    status = 400


class MalformedJsonError(BadRequestError):
    """A body that is not UTF-8 JSON within :mod:`replyflow.json_input`'s limits."""

    code = "malformed_json"


class PayloadTooLargeError(ReplyflowError):
    code = "payload_too_large"
    status = 413


class UnauthorizedError(ReplyflowError):
    code = "unauthorized"
    status = 401


class ForbiddenError(ReplyflowError):
    code = "forbidden"
    status = 403


class NotFoundError(ReplyflowError):
    code = "not_found"
    status = 404


class ConflictError(ReplyflowError):
    code = "conflict"
    status = 409


class PlanLimitError(ReplyflowError):
    code = "plan_limit_reached"
    status = 402


class RateLimitedError(ReplyflowError):
    code = "rate_limited"
    status = 429

    def __init__(
        self, message: str, *, retry_after: float, details: Any = None, code: str | None = None
    ) -> None:
        super().__init__(message, details=details, code=code)
        self.retry_after = retry_after


class SignatureError(UnauthorizedError):
    code = "invalid_signature"


class MailDeliveryError(ReplyflowError):
    """The mail service refused or could not be reached; nothing was committed."""

    code = "mail_unavailable"
    status = 503


class ConfigurationUnavailableError(ReplyflowError):
    """A setting the stack keeps outside the function's configuration (an SSM parameter) could not be read."""

    code = "configuration_unavailable"
    status = 503


class CooldownsUnavailableError(ReplyflowError):
    """The cooldown and rotation store (Redis) did not answer; the processor falls back to the ledger."""

    code = "cooldowns_unavailable"
    status = 503


class PaymentRequiredError(ReplyflowError):
    """A paid plan asked for without paying: the plan changes only when the provider says it is paid."""

    code = "payment_required"
    status = 402


class BillingProviderError(ReplyflowError):
    """The payment provider refused or failed a call (the message names the call, never a key)."""

    code = "billing_provider_error"
    status = 502


class SandboxUnavailableError(ReplyflowError):
    """The local Instagram sandbox refused a control call or could not be reached."""

    code = "sandbox_unavailable"
    status = 502


class BillingSignatureError(BadRequestError):
    """A provider webhook whose signature does not verify (Stripe expects a 400)."""

    code = "invalid_signature"


class TenantMovingError(ReplyflowError):
    """The tenant is being moved to another shard; its writes are paused until the switch (seconds)."""

    code = "tenant_moving"
    status = 503
