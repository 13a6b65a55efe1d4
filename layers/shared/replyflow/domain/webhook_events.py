"""Instagram webhook payloads: typed models for every event in the reference, and their flattening into
one :class:`WebhookEvent` per change or messaging item.

Invariants (reference sections 4-7):
- every ``entry`` and every ``changes[]`` / ``messaging[]`` / ``standby[]`` item is read; one malformed
  item never drops its neighbours (it is counted as ``malformed``);
- both envelope forms are accepted: ``{"object", "entry": [...]}`` and Meta's documented JSON array
  with ``field``/``value`` directly on the entry;
- the comment id is ``value.id``, falling back to ``value.comment_id``;
- times are epoch **seconds** as floats: values >= 1e12 are milliseconds (pitfall 4). Comment payloads
  carry no creation time, so ``occurred_at`` of a comment is ``entry.time`` (when Meta sent the
  notification, normally seconds after the comment): the 7-day private-reply rule is measured from it;
- dispatch on messaging items follows the reference's table, first matching key wins: ``is_echo``,
  ``is_deleted``, ``quick_reply``, story mention attachment, story reply, ``is_unsupported``, plain
  message; then postback, reaction, read, referral;
- :func:`drop_reason` is the single place that decides what never leaves the webhook: echoes, the
  account's own comments, the App Dashboard's test payloads, and kinds no automation can answer.

This module imports pydantic only: the webhook's cold start pays for it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

EventKind = Literal[
    "comment",
    "live_comment",
    "mention",
    "message",
    "quick_reply",
    "postback",
    "story_mention",
    "story_reply",
    "echo",
    "deleted",
    "unsupported",
    "reaction",
    "read",
    "referral",
]

# Kinds an automation can answer; the rest are counted and dropped at the webhook.
ACTIONABLE_KINDS: frozenset[str] = frozenset(
    {"comment", "live_comment", "message", "quick_reply", "postback", "story_mention", "story_reply"}
)
# Messaging kinds that mean "the user wrote to us" and so open the 24 h window.
INBOUND_MESSAGE_KINDS: frozenset[str] = frozenset(
    {"message", "quick_reply", "postback", "story_mention", "story_reply"}
)
COMMENT_KINDS: frozenset[str] = frozenset({"comment", "live_comment"})

# App Dashboard "Test" button sample values (reference pitfall 1).
TEST_ACCOUNT_ID = "0"
TEST_FROM_ID = "232323232"
TEST_COMMENT_ID = "17865799348089039"

MILLISECONDS_THRESHOLD = 1e12


def epoch_seconds(value: float | int | None) -> float | None:
    """Seconds since the epoch; Instagram mixes seconds and milliseconds (pitfall 4)."""
    if value is None:
        return None
    number = float(value)
    return number / 1000 if number >= MILLISECONDS_THRESHOLD else number


class _Lenient(BaseModel):
    # Unknown keys are ignored (pitfall 8); numeric ids are kept as strings.
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, populate_by_name=True)


class IgUser(_Lenient):
    id: str | None = None
    username: str | None = None
    self_ig_scoped_id: str | None = None


class Media(_Lenient):
    id: str | None = None
    media_product_type: str | None = None
    ad_id: str | None = None
    ad_title: str | None = None
    original_media_id: str | None = None


class CommentValue(_Lenient):
    id: str | None = None
    comment_id: str | None = None
    text: str | None = None
    from_: IgUser | None = Field(default=None, alias="from")
    media: Media | None = None
    media_id: str | None = None  # Facebook-Login ``mentions``
    parent_id: str | None = None

    @property
    def resolved_id(self) -> str | None:
        return self.id or self.comment_id


class Change(_Lenient):
    field: str
    value: dict[str, Any] = Field(default_factory=dict)


class Party(_Lenient):
    id: str | None = None


class AttachmentPayload(_Lenient):
    url: str | None = None
    title: str | None = None


class Attachment(_Lenient):
    type: str | None = None
    payload: AttachmentPayload | None = None


class StoryRef(_Lenient):
    id: str | None = None
    url: str | None = None


class ReplyTo(_Lenient):
    mid: str | None = None
    story: StoryRef | None = None


class QuickReplyTap(_Lenient):
    payload: str | None = None


class Referral(_Lenient):
    ref: str | None = None
    source: str | None = None
    type: str | None = None
    ad_id: str | None = None


class Message(_Lenient):
    mid: str | None = None
    text: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    quick_reply: QuickReplyTap | None = None
    reply_to: ReplyTo | None = None
    referral: Referral | None = None
    is_echo: bool = False
    is_deleted: bool = False
    is_unsupported: bool = False


class Postback(_Lenient):
    mid: str | None = None
    title: str | None = None
    payload: str | None = None


class Reaction(_Lenient):
    mid: str | None = None
    action: str | None = None
    reaction: str | None = None
    emoji: str | None = None


class Read(_Lenient):
    mid: str | None = None


class MessagingItem(_Lenient):
    sender: Party = Field(default_factory=Party)
    recipient: Party = Field(default_factory=Party)
    timestamp: float | None = None
    message: Message | None = None
    postback: Postback | None = None
    reaction: Reaction | None = None
    read: Read | None = None
    referral: Referral | None = None


class Entry(_Lenient):
    id: str
    time: float | None = None
    changes: list[dict[str, Any]] = Field(default_factory=list)
    messaging: list[dict[str, Any]] = Field(default_factory=list)
    standby: list[dict[str, Any]] = Field(default_factory=list)
    # Meta's documented (unwrapped) form puts one change directly on the entry.
    field: str | None = None
    value: dict[str, Any] | None = None


class WebhookEvent(_Lenient):
    """One change or messaging item, flattened. Also the ``event`` of an events-queue message."""

    kind: EventKind
    ig_account_id: str
    event_key: str | None = None  # comment id, message mid or postback mid (the dedupe key)
    occurred_at: float | None = None  # epoch seconds
    standby: bool = False
    sender_id: str | None = None
    sender_username: str | None = None
    text: str | None = None
    payload: str | None = None  # quick-reply or postback payload
    title: str | None = None  # postback title
    media_id: str | None = None
    media_product_type: str | None = None
    comment_id: str | None = None
    parent_id: str | None = None
    story_id: str | None = None
    attachment_types: list[str] = Field(default_factory=list)
    ad_id: str | None = None
    reaction: str | None = None
    test_payload: bool = False

    @property
    def is_comment(self) -> bool:
        return self.kind in COMMENT_KINDS


@dataclass
class ParseResult:
    events: list[WebhookEvent] = field(default_factory=list)
    # Counts of items that could not be read, by reason ("malformed", "unknown_field", ...).
    skipped: Counter[str] = field(default_factory=Counter)


def parse_body(body: Any) -> ParseResult:
    """Every event of a decoded webhook body. Never raises on content: bad items are counted."""
    result = ParseResult()
    bodies = body if isinstance(body, list) else [body]
    for item in bodies:
        if not isinstance(item, dict):
            result.skipped["malformed"] += 1
            continue
        entries = item.get("entry")
        if entries is None and "id" in item:
            entries = [item]  # a bare entry (Meta's array form)
        if not isinstance(entries, list):
            result.skipped["malformed"] += 1
            continue
        for raw_entry in entries:
            _parse_entry(raw_entry, result)
    return result


def _parse_entry(raw: Any, result: ParseResult) -> None:
    try:
        entry = Entry.model_validate(raw)
    except PydanticValidationError:
        result.skipped["malformed"] += 1
        return
    entry_time = epoch_seconds(entry.time)
    changes = list(entry.changes)
    if entry.field is not None and entry.value is not None:
        changes.append({"field": entry.field, "value": entry.value})
    for raw_change in changes:
        _guarded(result, lambda c=raw_change: _from_change(entry, entry_time, c))
    for raw_item in entry.messaging:
        _guarded(result, lambda m=raw_item: _from_messaging(entry, entry_time, m, standby=False))
    for raw_item in entry.standby:
        _guarded(result, lambda m=raw_item: _from_messaging(entry, entry_time, m, standby=True))


def _guarded(result: ParseResult, build: Any) -> None:
    try:
        event = build()
    except (PydanticValidationError, TypeError, ValueError):
        result.skipped["malformed"] += 1
        return
    if isinstance(event, str):
        result.skipped[event] += 1
    else:
        result.events.append(event)


def _from_change(entry: Entry, entry_time: float | None, raw: Any) -> WebhookEvent | str:
    change = Change.model_validate(raw)
    if change.field == "messages":
        # The dashboard's messages test arrives as a change (pitfall 1); read it like a messaging item.
        return _from_messaging(entry, entry_time, change.value, standby=False)
    if change.field not in ("comments", "live_comments", "mentions"):
        return "unknown_field"
    value = CommentValue.model_validate(change.value)
    comment_id = value.resolved_id
    sender = value.from_ or IgUser()
    media = value.media or Media()
    kind: EventKind
    if change.field == "mentions":
        kind = "mention"
    elif change.field == "live_comments" or (media.media_product_type or "").upper() == "LIVE":
        kind = "live_comment"
    else:
        kind = "comment"
    test = entry.id == TEST_ACCOUNT_ID or (sender.id == TEST_FROM_ID and comment_id == TEST_COMMENT_ID)
    return WebhookEvent(
        kind=kind,
        ig_account_id=entry.id,
        event_key=comment_id,
        occurred_at=entry_time,
        sender_id=sender.id,
        sender_username=sender.username,
        text=value.text,
        media_id=media.id or value.media_id,
        media_product_type=media.media_product_type,
        comment_id=comment_id,
        parent_id=value.parent_id,
        ad_id=media.ad_id,
        test_payload=test,
    )


def _from_messaging(entry: Entry, entry_time: float | None, raw: Any, *, standby: bool) -> WebhookEvent:
    item = MessagingItem.model_validate(raw)
    common: dict[str, Any] = {
        "ig_account_id": entry.id,
        "occurred_at": epoch_seconds(item.timestamp) or entry_time,
        "standby": standby,
        "sender_id": item.sender.id,
        "test_payload": entry.id == TEST_ACCOUNT_ID,
    }
    if item.message is not None:
        return _from_message(item.message, common)
    if item.postback is not None:
        pb = item.postback
        return WebhookEvent(
            kind="postback", event_key=pb.mid, payload=pb.payload, title=pb.title, text=pb.title, **common
        )
    if item.reaction is not None:
        return WebhookEvent(
            kind="reaction", event_key=item.reaction.mid, reaction=item.reaction.action, **common
        )
    if item.read is not None:
        return WebhookEvent(kind="read", event_key=item.read.mid, **common)
    if item.referral is not None:
        return WebhookEvent(kind="referral", payload=item.referral.ref, ad_id=item.referral.ad_id, **common)
    raise ValueError("messaging item with no known event")


def _from_message(message: Message, common: dict[str, Any]) -> WebhookEvent:
    attachment_types = [a.type for a in message.attachments if a.type]
    base = {"event_key": message.mid, "text": message.text, "attachment_types": attachment_types, **common}
    if message.is_echo:
        return WebhookEvent(kind="echo", **base)
    if message.is_deleted:
        return WebhookEvent(kind="deleted", **base)
    if message.quick_reply is not None and message.quick_reply.payload is not None:
        # ``text`` is the button title: route by payload, never by keyword (reference section 6).
        return WebhookEvent(kind="quick_reply", payload=message.quick_reply.payload, **base)
    if "story_mention" in attachment_types:
        return WebhookEvent(kind="story_mention", **base)
    if message.reply_to is not None and message.reply_to.story is not None:
        return WebhookEvent(kind="story_reply", story_id=message.reply_to.story.id, **base)
    if message.is_unsupported:
        return WebhookEvent(kind="unsupported", **base)
    if message.referral is not None:
        base["ad_id"] = message.referral.ad_id
    return WebhookEvent(kind="message", **base)


def drop_reason(event: WebhookEvent) -> str | None:
    """Why the webhook drops an event before routing, or None to route it. Counted per reason."""
    if event.test_payload:
        return "test_payload"
    if event.kind == "echo" or (event.sender_id is not None and event.sender_id == event.ig_account_id):
        # Echoes and our own comments (public replies come back as comments): the loop guards.
        return "echo" if event.kind == "echo" or not event.is_comment else "self_comment"
    if event.standby:
        return "standby"  # another app owns the thread: never reply
    if event.kind not in ACTIONABLE_KINDS:
        return f"ignored_{event.kind}"
    if not event.event_key:
        return "no_event_key"
    return None
