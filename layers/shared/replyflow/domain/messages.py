"""Queue message bodies between the pipeline's stages (versioned JSON, pydantic at both ends).

- events-{priority}: :class:`EventMessage`, one webhook event routed to its tenant and account. The
  routing facts travel with the event so the processor never resolves the account again.
- sends-{priority}: :class:`SendJob`, one ``outbound_messages`` row by id. The row is the truth (what
  to send, whether it went out); the message only says "look at this row now", so a duplicate or
  re-published job is harmless.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from replyflow.domain.webhook_events import WebhookEvent

QueuePriority = Literal["low", "default", "high"]


def events_queue(priority: str) -> str:
    return f"events-{_priority(priority)}"


def sends_queue(priority: str) -> str:
    return f"sends-{_priority(priority)}"


def _priority(value: str) -> str:
    return value if value in ("low", "default", "high") else "default"


class EventMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = 1
    tenant_id: str
    account_id: str
    priority: QueuePriority = "default"
    event: WebhookEvent


class SendJob(BaseModel):
    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = 1
    tenant_id: str
    account_id: str
    outbound_id: int
