"""Queue message bodies between the pipeline's stages (versioned JSON, validated at both ends).

- events-{priority}: :class:`EventMessage`, one webhook event routed to its tenant and account. The
  routing facts travel with the event so the processor never resolves the account again.
- events-{priority} also carries :class:`FlowTimerJob`, published with the SQS delay of a flow
  timer due within 15 minutes: "fire timer N now" (the ``flow_timers`` row is the truth, and its
  claim makes a second delivery, or the sweep getting there first, a no-op);
- sends-{priority}: :class:`SendJob`, one ``outbound_messages`` row by id. The row is the truth (what
  to send, whether it went out); the message only says "look at this row now", so a duplicate or
  re-published job is harmless.

Plain dataclasses with hand validation: the webhook builds these on its cold path, where pydantic
model construction would cost more than everything else it imports. Bad input raises ``ValueError``
(the worker then reports that record as failed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from replyflow.domain.webhook_events import WebhookEvent
from replyflow.errors import MalformedJsonError
from replyflow.json_input import decode_json

QueuePriority = Literal["low", "default", "high"]
VERSION = 1


def events_queue(priority: str) -> str:
    return f"events-{queue_priority(priority)}"


def sends_queue(priority: str) -> str:
    return f"sends-{queue_priority(priority)}"


def queue_priority(value: str) -> QueuePriority:
    """A known priority; anything else (a stale cache entry, a new plan) runs as default."""
    if value == "low":
        return "low"
    return "high" if value == "high" else "default"


def _load(body: str | bytes) -> dict[str, Any]:
    try:
        data = decode_json(body)
    except MalformedJsonError as error:
        raise ValueError(error.message) from None
    if not isinstance(data, dict) or data.get("v", VERSION) != VERSION:
        raise ValueError("not a version-1 queue message")
    return data


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is required")
    return value


@dataclass(frozen=True)
class EventMessage:
    tenant_id: str
    account_id: str
    event: WebhookEvent
    priority: QueuePriority = "default"

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": VERSION,
                "tenant_id": self.tenant_id,
                "account_id": self.account_id,
                "priority": self.priority,
                "event": self.event.to_dict(),
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, body: str | bytes) -> EventMessage:
        data = _load(body)
        return cls(
            tenant_id=_text(data, "tenant_id"),
            account_id=_text(data, "account_id"),
            priority=queue_priority(str(data.get("priority", "default"))),
            event=WebhookEvent.from_dict(data.get("event")),
        )


@dataclass(frozen=True)
class SendJob:
    tenant_id: str
    account_id: str
    outbound_id: int

    def to_json(self) -> str:
        body = {"v": VERSION, "tenant_id": self.tenant_id, "account_id": self.account_id}
        return json.dumps({**body, "outbound_id": self.outbound_id}, separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str | bytes) -> SendJob:
        data = _load(body)
        outbound_id = data.get("outbound_id")
        if not isinstance(outbound_id, int) or isinstance(outbound_id, bool):
            raise ValueError("outbound_id must be an integer")
        return cls(_text(data, "tenant_id"), _text(data, "account_id"), outbound_id)


@dataclass(frozen=True)
class FlowTimerJob:
    tenant_id: str
    account_id: str
    timer_id: int

    def to_json(self) -> str:
        body = {"v": VERSION, "tenant_id": self.tenant_id, "account_id": self.account_id}
        return json.dumps({**body, "flow_timer_id": self.timer_id}, separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str | bytes) -> FlowTimerJob:
        data = _load(body)
        timer_id = data.get("flow_timer_id")
        if not isinstance(timer_id, int) or isinstance(timer_id, bool):
            raise ValueError("flow_timer_id must be an integer")
        return cls(_text(data, "tenant_id"), _text(data, "account_id"), timer_id)


def events_message(body: str | bytes) -> EventMessage | FlowTimerJob:
    """What an events-queue body is: a webhook event, or a flow timer to fire."""
    data = _load(body)
    if "flow_timer_id" in data:
        return FlowTimerJob.from_json(body)
    return EventMessage.from_json(body)
