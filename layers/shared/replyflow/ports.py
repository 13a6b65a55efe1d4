"""Small protocols the services depend on. The wiring modules pass real adapters; unit tests pass fakes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from replyflow.domain.emails import OutgoingEmail


class Cache(Protocol):
    def get_json(self, key: str) -> Any | None: ...

    def set_json(self, key: str, value: Any, ttl_seconds: int) -> None: ...

    def delete(self, *keys: str) -> None: ...


class QueuePublisher(Protocol):
    """Publishes message bodies to a logical queue ("events-high", "sends-default", ...)."""

    def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None: ...


class Mailer(Protocol):
    """Sends one email or raises ``MailDeliveryError``. SES in AWS; a local outbox file otherwise."""

    def send(self, message: OutgoingEmail) -> None: ...


class QueueVisibility(Protocol):
    """ChangeMessageVisibility for received messages of one queue (named by its ARN, as in the SQS
    event's ``eventSourceARN``): ``changes`` are ``(receipt_handle, visibility_timeout_seconds)``."""

    def change_visibility(self, queue_arn: str, changes: Sequence[tuple[str, int]]) -> None: ...
