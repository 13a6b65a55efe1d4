"""Sandbox tools: a test comment on one of the tenant's accounts, sent from the console, on a stack
whose Graph API is the local Instagram sandbox (docs/architecture.md#the-tenant-console).

Invariants:
- nothing here exists unless ``SANDBOX_TOOLS`` is on (the local stack and the test stacks turn it on;
  a deployed stack never does, and the settings refuse it in dev and prod): off, every call is a 404
  ``sandbox_tools_disabled`` before anything is read, so a production API cannot make an event;
- the account is the caller's tenant's (404 otherwise, the same answer as an unknown id) and the
  caller manages it (admin or owner, like every account write); a disconnected account is a 409;
- the comment is registered with the sandbox first (a private reply to it must find it there), then
  its webhook body, built by ``domain.webhook_bodies`` like the CLI's ``simulate comment``, goes
  through the webhook's own ``intake.route_and_enqueue``: the same routing, priority queue, processor
  and dedupe ledger as a comment Meta delivers. Nothing is signed: the body never leaves the API.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from replyflow.clock import epoch_seconds
from replyflow.db.repositories import accounts
from replyflow.domain.webhook_bodies import (
    DEFAULT_FROM_ID,
    DEFAULT_MEDIA_ID,
    DEFAULT_USERNAME,
    comment_body,
    new_comment_id,
)
from replyflow.errors import ConflictError, NotFoundError
from replyflow.ports import QueuePublisher, SandboxComment, SandboxComments
from replyflow.services.access import Principal
from replyflow.services.intake import RouteResolver, route_and_enqueue

MAX_COMMENT_CHARS = 2200  # Instagram's limit on a comment's text


class SandboxCommentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_COMMENT_CHARS, description="the comment's text")
    username: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._]{1,30}$",
        description=f"the commenter's Instagram username (default {DEFAULT_USERNAME})",
    )
    from_id: str | None = Field(
        default=None,
        pattern=r"^[0-9]{5,30}$",
        description=f"the commenter's Instagram-scoped id (default {DEFAULT_FROM_ID})",
    )
    media_id: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,30}$",
        description=f"the post commented on (default {DEFAULT_MEDIA_ID})",
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the text is blank")
        return value


class SandboxCommentSent(BaseModel):
    """What was made: the comment, and what the webhook intake did with its event."""

    comment_id: str
    account_id: str
    ig_user_id: str
    media_id: str
    text: str
    username: str
    from_id: str
    enqueued: int = Field(description="events put on the processor's queue (1, or 0 when dropped)")
    dropped: dict[str, int] = Field(description="events the intake dropped, by reason (e.g. self_comment)")


def disabled_error() -> NotFoundError:
    return NotFoundError(
        "test comments exist only on a stack whose Graph API is the local Instagram sandbox "
        "(SANDBOX_TOOLS); on Instagram, comment on the account's post instead",
        code="sandbox_tools_disabled",
    )


def send_comment(
    session: Session,
    sandbox: SandboxComments,
    resolver: RouteResolver,
    publisher: QueuePublisher,
    principal: Principal,
    account_id: str,
    request: SandboxCommentRequest,
    *,
    enabled: bool,
    now: datetime,
) -> SandboxCommentSent:
    """Registers a comment on ``account_id`` with the sandbox and delivers its webhook event."""
    if not enabled:
        raise disabled_error()
    principal.require("admin")
    account = accounts.get(session, principal.tenant_id, account_id)
    if account is None:
        raise NotFoundError("no such account")
    if account.status == "disabled":
        raise ConflictError(
            "the account is disconnected; connect it again first", code="account_disconnected"
        )
    comment = SandboxComment(
        comment_id=new_comment_id(),
        account_id=account.ig_user_id,
        from_id=request.from_id or DEFAULT_FROM_ID,
        username=request.username or DEFAULT_USERNAME,
        text=request.text,
        media_id=request.media_id or DEFAULT_MEDIA_ID,
        timestamp=epoch_seconds(now),
    )
    sandbox.register(comment)
    body = comment_body(
        text=comment.text,
        account=comment.account_id,
        comment_id=comment.comment_id,
        from_id=comment.from_id,
        username=comment.username,
        media_id=comment.media_id,
        now=comment.timestamp,
    )
    result = route_and_enqueue(body, resolver=resolver, publisher=publisher)
    return SandboxCommentSent(
        comment_id=comment.comment_id,
        account_id=account.id,
        ig_user_id=account.ig_user_id,
        media_id=comment.media_id,
        text=comment.text,
        username=comment.username,
        from_id=comment.from_id,
        enqueued=result.enqueued,
        dropped=dict(result.counts),
    )
