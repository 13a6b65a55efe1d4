"""A message's lifecycle as types, and the two pure decisions the pipeline makes on it.

Vocabulary (the enum values are the database values, unchanged):
- :class:`OutboundStatus`: an ``outbound_messages`` row's status (``queued`` -> ``sending`` -> ``sent``,
  or ``deferred`` / ``parked`` / ``skipped`` / ``failed`` / ``unknown``);
- :class:`SendKind`: what a row sends (``private_reply``, ``public_reply``, ``dm``);
- :class:`ActionName`: an automation's configured action (``private_reply``, ``public_reply``,
  ``dm_reply``), each planned into at most one send of its :data:`SEND_KIND`;
- :class:`LogAction` and :class:`DecisionReason`: an ``automation_logs`` row's ``action`` and
  ``reason``.

:func:`gate_event`, :func:`choose_winner` and :func:`plan_actions` are the processor's decision
(``services.process_event``) and the dry run's (``services.automation_dry_run``): both call them with
the same facts, so the dry run cannot disagree with production (a property test holds them to it).
They are pure: history (the contact's last message, the tenant's quota, the cooldown, the reply
variant rotation) comes in as values or callables. :func:`decide_send` is the sender's pre-send check
(``services.send_reply``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from replyflow.domain.webhook_events import INBOUND_MESSAGE_KINDS, WebhookEvent

if TYPE_CHECKING:
    from replyflow.domain.matching import Match, Rule

PRIVATE_REPLY_WINDOW = timedelta(days=7)
DM_WINDOW = timedelta(hours=24)
# A Live comment may be answered privately only while the broadcast runs, and nothing says when it
# ends: the processor plans the reply only this soon after the event, and the sender gives up past it
# (settings ``LIVE_PRIVATE_REPLY_WINDOW_SECONDS``; docs/instagram.md#private-replies).
LIVE_PRIVATE_REPLY_WINDOW = timedelta(minutes=10)


class OutboundStatus(StrEnum):
    QUEUED = "queued"
    DEFERRED = "deferred"
    PARKED = "parked"
    SENDING = "sending"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNKNOWN = "unknown"


class SendKind(StrEnum):
    PRIVATE_REPLY = "private_reply"
    PUBLIC_REPLY = "public_reply"
    DM = "dm"


class ActionName(StrEnum):
    PRIVATE_REPLY = "private_reply"
    PUBLIC_REPLY = "public_reply"
    DM_REPLY = "dm_reply"


SEND_KIND: dict[ActionName, SendKind] = {
    ActionName.PRIVATE_REPLY: SendKind.PRIVATE_REPLY,
    ActionName.PUBLIC_REPLY: SendKind.PUBLIC_REPLY,
    ActionName.DM_REPLY: SendKind.DM,
}


class LogAction(StrEnum):
    """``automation_logs.action``: the processor's decisions, then the sender's outcomes."""

    MATCHED = "matched"
    SKIPPED = "skipped"
    QUEUED = "queued"
    PARKED = "parked"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    DEFERRED = "deferred"
    FLOW_STEP = "flow_step"  # a flow step's decision: reason the outcome, detail the flow and step


class DecisionReason(StrEnum):
    # the event
    ACCOUNT_MISSING = "account_missing"
    ACCOUNT_DISABLED = "account_disabled"
    OWN_EVENT = "own_event"
    NO_MATCH = "no_match"
    # a matching automation
    SUPERSEDED = "superseded"
    COOLDOWN = "cooldown"
    NOT_NEW_CONTACT = "not_new_contact"
    ONCE_PER_POST = "once_per_post"
    NO_ACTIONS = "no_actions"
    # one action of the winner
    NOT_A_COMMENT = "not_a_comment"
    PRIVATE_REPLY_WINDOW_EXPIRED = "private_reply_window_expired"
    LIVE_BROADCAST_OVER = "live_broadcast_over"
    LIVE_NO_PUBLIC_REPLY = "live_no_public_reply"
    NOT_TOP_LEVEL = "not_top_level"
    NO_VARIANTS = "no_variants"
    NO_RECIPIENT = "no_recipient"
    OUTSIDE_WINDOW = "outside_window"
    TEMPLATE_MISSING = "template_missing"
    TEMPLATE_INVALID = "template_invalid"
    QUOTA_EXCEEDED = "quota_exceeded"
    # writing the plan down
    DUPLICATE = "duplicate"
    NEEDS_REAUTH = "needs_reauth"


# -- the processor's decision ----------------------------------------------------------------------


def gate_event(event: WebhookEvent, account_status: str | None, ig_user_id: str) -> DecisionReason | None:
    """Why the event is not matched at all (``account_status`` None: no such account), or None."""
    if account_status is None:
        return DecisionReason.ACCOUNT_MISSING
    if account_status == "disabled":
        return DecisionReason.ACCOUNT_DISABLED
    if event.sender_id and event.sender_id == ig_user_id:
        return DecisionReason.OWN_EVENT
    return None


@dataclass(frozen=True)
class RuleVerdict:
    rule_id: str
    action: LogAction  # matched or skipped
    reason: DecisionReason | None
    detail: str | None = None


@dataclass(frozen=True)
class Selection:
    winner: Match | None
    verdicts: tuple[RuleVerdict, ...]


def once_per_post_applies(rule: Rule, event: WebhookEvent) -> bool:
    """Whether ``once_per_post`` constrains this event: a comment on a post, by a known person."""
    return rule.once_per_post and event.is_comment and bool(event.media_id) and bool(event.sender_id)


def choose_winner(
    matches: Sequence[Match],
    cooldown_free: Callable[[Rule], bool],
    once_free: Callable[[Rule], bool] | None = None,
    *,
    new_contact: bool = True,
) -> Selection:
    """Walk the matches in order (``domain.matching`` documents the rule): the first that is open to
    this contact wins, the others are superseded. Open means, in this order: ``new_contacts_only``
    holds (``new_contact``: the person was not a contact before this event), the cooldown is free
    (``cooldown_free``, asked only for rules with a cooldown), and the once-per-post claim is free
    (``once_free``, asked only for rules with ``once_per_post``; None: always free). The callables are
    asked only until a winner is found (they may take the cooldown or the claim)."""
    winner: Match | None = None
    verdicts = []
    for match in matches:
        rule = match.rule
        if winner is not None:
            verdicts.append(
                RuleVerdict(rule.id, LogAction.SKIPPED, DecisionReason.SUPERSEDED, f"winner {winner.rule.id}")
            )
            continue
        closed = _closed(rule, cooldown_free, once_free, new_contact)
        if closed is not None:
            verdicts.append(RuleVerdict(rule.id, LogAction.SKIPPED, closed))
            continue
        winner = match
        verdicts.append(RuleVerdict(rule.id, LogAction.MATCHED, None, f"keyword {match.keyword!r}"))
    return Selection(winner, tuple(verdicts))


def _closed(
    rule: Rule,
    cooldown_free: Callable[[Rule], bool],
    once_free: Callable[[Rule], bool] | None,
    new_contact: bool,
) -> DecisionReason | None:
    if rule.new_contacts_only and not new_contact:
        return DecisionReason.NOT_NEW_CONTACT
    if rule.cooldown_seconds > 0 and not cooldown_free(rule):
        return DecisionReason.COOLDOWN
    if rule.once_per_post and once_free is not None and not once_free(rule):
        return DecisionReason.ONCE_PER_POST
    return None


@dataclass(frozen=True)
class PlanFacts:
    """What planning needs beyond the event and the rule."""

    account_username: str
    occurred_at: datetime
    now: datetime
    # The contact's last inbound message before this event; a DM-family event is its own.
    last_inbound_at: datetime | None
    quota_left: int
    # The comment's own creation time, when the processor read it from the Graph API (the payload has
    # none; ``occurred_at`` is the notification's ``entry.time``): the 7-day window is measured from it.
    comment_created_at: datetime | None = None
    live_window: timedelta = LIVE_PRIVATE_REPLY_WINDOW


@dataclass(frozen=True)
class PlannedSend:
    action: ActionName
    kind: SendKind
    dedupe_key: str
    payload: dict[str, Any]
    recipient_id: str | None


@dataclass(frozen=True)
class SkippedAction:
    action: ActionName | None  # None: the rule as a whole (no actions)
    reason: DecisionReason
    detail: str | None = None


PlanStep = PlannedSend | SkippedAction


def needs_quota(rule: Rule) -> bool:
    return ActionName.PRIVATE_REPLY in rule.actions or ActionName.DM_REPLY in rule.actions


def needs_contact_history(rule: Rule, event: WebhookEvent) -> bool:
    """Whether :attr:`PlanFacts.last_inbound_at` must be read from the contact (else the event is it)."""
    return ActionName.DM_REPLY in rule.actions and bool(event.sender_id) and not _inbound(event)


def is_live(event: WebhookEvent) -> bool:
    """A comment on a Live broadcast (``live_comments``, or Live media seen on ``comments``)."""
    return event.kind == "live_comment" or (event.media_product_type or "").upper() == "LIVE"


def needs_comment_time(
    rule: Rule, event: WebhookEvent, facts_now: datetime, occurred_at: datetime, margin: timedelta
) -> bool:
    """Whether the processor should read the comment's creation time: a private reply may be planned
    and the notification is within ``margin`` of the 7-day edge (``entry.time`` is when Meta sent it,
    which a retried delivery puts well after the comment)."""
    return (
        ActionName.PRIVATE_REPLY in rule.actions
        and event.is_comment
        and bool(event.comment_id)
        and not is_live(event)
        and facts_now - occurred_at >= PRIVATE_REPLY_WINDOW - margin
    )


def _inbound(event: WebhookEvent) -> bool:
    return event.kind in INBOUND_MESSAGE_KINDS


def variables_for(event: WebhookEvent, match: Match, account_username: str) -> dict[str, str]:
    return {
        "username": event.sender_username or "",
        "comment_text": event.text or "",
        "keyword": match.keyword,
        "media_id": event.media_id or "",
        "account_username": account_username,
    }


def plan_actions(
    event: WebhookEvent, match: Match, facts: PlanFacts, choose_variant: Callable[[Rule, int], int]
) -> list[PlanStep]:
    """The winner's actions, in the order private reply, public reply, DM: each a send or a skip with
    its reason. ``choose_variant(rule, n)`` picks the public reply variant (0..n-1); it is called only
    for a public reply that will be planned."""
    rule, actions = match.rule, match.rule.actions
    if not any(name in actions for name in ActionName):
        return [SkippedAction(None, DecisionReason.NO_ACTIONS)]
    variables = variables_for(event, match, facts.account_username)
    quota = [facts.quota_left]
    steps: list[PlanStep] = []
    if ActionName.PRIVATE_REPLY in actions:
        steps.append(_private_reply(event, actions[ActionName.PRIVATE_REPLY], variables, facts, quota))
    if ActionName.PUBLIC_REPLY in actions:
        steps.append(_public_reply(event, rule, actions[ActionName.PUBLIC_REPLY], variables, choose_variant))
    if ActionName.DM_REPLY in actions:
        steps.append(_dm_reply(event, actions[ActionName.DM_REPLY], variables, facts, quota))
    return steps


def _private_reply(
    event: WebhookEvent, action: dict[str, Any], variables: dict[str, str], facts: PlanFacts, quota: list[int]
) -> PlanStep:
    name = ActionName.PRIVATE_REPLY
    if not event.is_comment or not event.comment_id:
        return SkippedAction(name, DecisionReason.NOT_A_COMMENT)
    if is_live(event):
        not_after = facts.occurred_at + facts.live_window
        if facts.now > not_after:
            return SkippedAction(name, DecisionReason.LIVE_BROADCAST_OVER)
    else:
        not_after = (facts.comment_created_at or facts.occurred_at) + PRIVATE_REPLY_WINDOW
        if facts.now > not_after:
            return SkippedAction(name, DecisionReason.PRIVATE_REPLY_WINDOW_EXPIRED)
    message = _render(name, action, variables)
    if isinstance(message, SkippedAction):
        return message
    if (skip := _take_quota(name, quota)) is not None:
        return skip
    payload = {
        "recipient": {"comment_id": event.comment_id},
        "message": message,
        "not_after": not_after.isoformat(),
    }
    return PlannedSend(name, SendKind.PRIVATE_REPLY, event.comment_id, payload, event.sender_id)


def _public_reply(
    event: WebhookEvent,
    rule: Rule,
    action: dict[str, Any],
    variables: dict[str, str],
    choose_variant: Callable[[Rule, int], int],
) -> PlanStep:
    name = ActionName.PUBLIC_REPLY
    variants = public_reply_variants(action)
    if not event.is_comment or not event.comment_id:
        return SkippedAction(name, DecisionReason.NOT_A_COMMENT)
    if is_live(event):
        return SkippedAction(name, DecisionReason.LIVE_NO_PUBLIC_REPLY)
    if event.parent_id:
        return SkippedAction(name, DecisionReason.NOT_TOP_LEVEL)
    if not variants:
        return SkippedAction(name, DecisionReason.NO_VARIANTS)
    index = choose_variant(rule, len(variants)) % len(variants)
    from replyflow.domain.templates import render_text  # pydantic: the processor's, not the sender's

    payload = {
        "comment_id": event.comment_id,
        "message": render_text(variants[index], variables),
        "variant": index,
    }
    return PlannedSend(name, SendKind.PUBLIC_REPLY, event.comment_id, payload, event.sender_id)


def public_reply_variants(action: dict[str, Any]) -> list[str]:
    return [str(v) for v in action.get("variants") or [] if str(v).strip()]


def _dm_reply(
    event: WebhookEvent, action: dict[str, Any], variables: dict[str, str], facts: PlanFacts, quota: list[int]
) -> PlanStep:
    name = ActionName.DM_REPLY
    if not event.sender_id:
        return SkippedAction(name, DecisionReason.NO_RECIPIENT)
    last_inbound = facts.occurred_at if _inbound(event) else facts.last_inbound_at
    if last_inbound is None or facts.now - last_inbound > DM_WINDOW:
        return SkippedAction(name, DecisionReason.OUTSIDE_WINDOW)
    message = _render(name, action, variables)
    if isinstance(message, SkippedAction):
        return message
    if (skip := _take_quota(name, quota)) is not None:
        return skip
    payload = {
        "recipient": {"id": event.sender_id},
        "message": message,
        "not_after": (last_inbound + DM_WINDOW).isoformat(),
    }
    return PlannedSend(name, SendKind.DM, event.event_key or "", payload, event.sender_id)


def _render(
    name: ActionName, action: dict[str, Any], variables: dict[str, str]
) -> dict[str, Any] | SkippedAction:
    content = action.get("content")
    if not isinstance(content, dict):
        return SkippedAction(name, DecisionReason.TEMPLATE_MISSING, name)
    # Templates are pydantic models, which the sender (it imports this module for ``decide_send``)
    # never needs: imported by the processor's first rendered message (docs/architecture.md#cold-starts).
    from pydantic import ValidationError as PydanticValidationError

    from replyflow.domain.templates import TemplateContent, build_message

    try:
        template = TemplateContent.model_validate(content)
    except PydanticValidationError as exc:
        return SkippedAction(name, DecisionReason.TEMPLATE_INVALID, str(exc))
    return build_message(template, variables)


def _take_quota(name: ActionName, quota: list[int]) -> SkippedAction | None:
    if quota[0] <= 0:
        return SkippedAction(name, DecisionReason.QUOTA_EXCEEDED)
    quota[0] -= 1
    return None


# -- the sender's decision -------------------------------------------------------------------------


class SendStep(StrEnum):
    """What the sender does with a row before any Graph call."""

    NOOP = "noop"  # leave it alone (terminal, parked, failed for good)
    IN_FLIGHT = "in_flight"  # another worker holds it: settle it if its lease is over, else look later
    SKIP = "skip"  # settle it as skipped with the reason
    PARK = "park"  # park it until the account is reconnected
    SEND = "send"  # take it (``ledger.start_send``) and call Graph


@dataclass(frozen=True)
class SendDecision:
    step: SendStep
    reason: str | None = None


# ``failed`` is terminal too unless its error_code is ``transient`` (it waits in the queue or DLQ).
TERMINAL_STATUSES = frozenset({OutboundStatus.SENT, OutboundStatus.SKIPPED, OutboundStatus.UNKNOWN})
TRANSIENT_ERROR = "transient"
POLICY_BLOCK_REASON = "policy_block_368"


def decide_send(
    *,
    status: str,
    error_code: str | None,
    kind: str,
    not_after: datetime | None,
    account_status: str | None,
    account_status_reason: str | None,
    now: datetime,
) -> SendDecision:
    """The sender's pre-send check on a loaded row (``account_status`` None: no such account)."""
    if status in TERMINAL_STATUSES or status == OutboundStatus.PARKED:
        return SendDecision(SendStep.NOOP, status)
    if status == OutboundStatus.FAILED and error_code != TRANSIENT_ERROR:
        return SendDecision(SendStep.NOOP, OutboundStatus.FAILED)
    if status == OutboundStatus.SENDING:
        return SendDecision(SendStep.IN_FLIGHT)
    if account_status is None:
        return SendDecision(SendStep.SKIP, DecisionReason.ACCOUNT_MISSING)
    if account_status == "disabled":
        return SendDecision(SendStep.SKIP, DecisionReason.ACCOUNT_DISABLED)
    if account_status == "needs_reauth":
        blocked = account_status_reason == POLICY_BLOCK_REASON
        return SendDecision(SendStep.PARK, POLICY_BLOCK_REASON if blocked else DecisionReason.NEEDS_REAUTH)
    if not_after is not None and now > not_after:
        expired = (
            DecisionReason.PRIVATE_REPLY_WINDOW_EXPIRED
            if kind == SendKind.PRIVATE_REPLY
            else DecisionReason.OUTSIDE_WINDOW
        )
        return SendDecision(SendStep.SKIP, expired)
    return SendDecision(SendStep.SEND)
