"""Instagram webhook payloads: the shapes of every event in docs/instagram.md (``TypedDict``s: zero import
cost, checked by mypy), their flattening into one :class:`WebhookEvent` per change or messaging item,
and the single rule for what never leaves the webhook.

Invariants (docs/instagram.md#envelope-and-routing and the sections after it):
- every ``entry`` and every ``changes[]`` / ``messaging[]`` / ``standby[]`` item is read; one malformed
  item never drops its neighbours (it is counted as ``malformed``); unknown keys are ignored;
- both envelope forms are accepted: ``{"object", "entry": [...]}`` and Meta's documented JSON array
  with ``field``/``value`` directly on the entry;
- the comment id is ``value.id``, falling back to ``value.comment_id``; numeric ids become strings;
- times are epoch **seconds** as floats: values >= 1e12 are milliseconds (docs/instagram.md#timestamps).
  Comment payloads carry no creation time, so ``occurred_at`` of a comment is ``entry.time`` (when
  Meta sent the notification, normally seconds after the comment): the 7-day private-reply rule is
  measured from it;
- dispatch on messaging items follows the table in docs/instagram.md#messaging-events, first matching
  key wins: ``is_echo``, ``is_deleted``, ``quick_reply``, story mention attachment, story reply,
  ``is_unsupported``, plain message; then postback, reaction, read, referral;
- :func:`drop_reason` is the single place that decides what never leaves the webhook: echoes, the
  account's own comments, the App Dashboard's test payloads, standby items, and kinds no automation
  can answer.

The webhook imports this module on its cold path, so it is parsed by hand: no model classes to build
at import (pydantic model construction cost ~100 ms here, more than the rest of the webhook).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from typing import Any, Literal, TypedDict, cast

from replyflow.errors import ReplyflowError

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

# App Dashboard "Test" button sample values (docs/instagram.md#loops-and-test-payloads).
TEST_ACCOUNT_ID = "0"
TEST_FROM_ID = "232323232"
TEST_COMMENT_ID = "17865799348089039"

MILLISECONDS_THRESHOLD = 1e12


def epoch_seconds(value: float | int | None) -> float | None:
    """Seconds since the epoch; Instagram mixes seconds and milliseconds (docs/instagram.md#timestamps)."""
    if value is None:
        return None
    number = float(value)
    return number / 1000 if number >= MILLISECONDS_THRESHOLD else number


# -- the payload shapes (docs/instagram.md#comment-events, #messaging-events) ---------------------


class IgUserShape(TypedDict, total=False):
    id: str
    username: str
    self_ig_scoped_id: str


class MediaShape(TypedDict, total=False):
    id: str
    media_product_type: str  # FEED, LIVE, REELS, STORY, AD, ... (never reject an unknown value)
    ad_id: str
    ad_title: str
    original_media_id: str


CommentShape = TypedDict(
    "CommentShape",
    {
        "id": str,
        "comment_id": str,  # Facebook-Login examples: instead of ``id``
        "text": str,
        "from": IgUserShape,
        "media": MediaShape,
        "media_id": str,  # Facebook-Login ``mentions``
        "parent_id": str,
    },
    total=False,
)


class ChangeShape(TypedDict, total=False):
    field: str  # comments, live_comments, mentions; "messages" in dashboard tests
    value: CommentShape


class AttachmentShape(TypedDict, total=False):
    type: str  # audio, file, image, share, video, ig_reel, reel, story_mention
    payload: dict[str, Any]


class MessageShape(TypedDict, total=False):
    mid: str
    text: str
    attachments: list[AttachmentShape]
    quick_reply: dict[str, str]  # {"payload"}
    reply_to: dict[str, Any]  # {"mid"} or {"story": {"id", "url"}}
    referral: dict[str, Any]
    is_echo: bool
    is_deleted: bool
    is_unsupported: bool


class PostbackShape(TypedDict, total=False):
    mid: str
    title: str
    payload: str


class ReactionShape(TypedDict, total=False):
    mid: str
    action: str  # react / unreact
    reaction: str
    emoji: str


class MessagingShape(TypedDict, total=False):
    sender: dict[str, str]
    recipient: dict[str, str]
    timestamp: int
    message: MessageShape
    postback: PostbackShape
    reaction: ReactionShape
    read: dict[str, str]  # {"mid"}
    referral: dict[str, Any]  # {"ref", "source", "type"}


class EntryShape(TypedDict, total=False):
    id: str
    time: int
    changes: list[ChangeShape]
    messaging: list[MessagingShape]
    standby: list[MessagingShape]
    field: str
    value: CommentShape


class MalformedEventError(ReplyflowError, ValueError):
    """An item that cannot be read."""

    code = "malformed_event"
    status = 400


def _str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value)) if float(value).is_integer() else str(value)
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# -- the flattened event ---------------------------------------------------------------------------


@dataclass
class WebhookEvent:
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
    attachment_types: list[str] = field(default_factory=list)
    ad_id: str | None = None
    reaction: str | None = None
    test_payload: bool = False

    @property
    def is_comment(self) -> bool:
        return self.kind in COMMENT_KINDS

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != [] and v is not False}

    @classmethod
    def from_dict(cls, data: Any) -> WebhookEvent:
        if not isinstance(data, dict):
            raise ValueError("event must be an object")
        kind, account = data.get("kind"), _str(data.get("ig_account_id"))
        if kind not in _KINDS or not account:
            raise ValueError(f"bad event kind {kind!r} or account")
        values: dict[str, Any] = {"kind": kind, "ig_account_id": account}
        for spec in fields(cls):
            if spec.name in values or spec.name not in data or data[spec.name] is None:
                continue
            raw = data[spec.name]
            if spec.name == "occurred_at":
                values[spec.name] = _num(raw)
            elif spec.name in ("standby", "test_payload"):
                values[spec.name] = bool(raw)
            elif spec.name == "attachment_types":
                values[spec.name] = [t for t in (_str(x) for x in _items(raw)) if t]
            else:
                values[spec.name] = _str(raw)
        return cls(**values)


_KINDS: frozenset[str] = frozenset(EventKind.__args__)  # type: ignore[attr-defined]


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
    entry_id = _str(raw.get("id")) if isinstance(raw, dict) else None
    if not entry_id:
        result.skipped["malformed"] += 1
        return
    entry = cast(EntryShape, raw)
    entry_time = epoch_seconds(_num(entry.get("time")))
    changes = list(_items(entry.get("changes")))
    if entry.get("field") is not None and isinstance(entry.get("value"), dict):
        changes.append({"field": entry["field"], "value": entry["value"]})
    for change in changes:
        _guarded(result, partial(_from_change, entry_id, entry_time, change))
    for item in _items(entry.get("messaging")):
        _guarded(result, partial(_from_messaging, entry_id, entry_time, item, standby=False))
    for item in _items(entry.get("standby")):
        _guarded(result, partial(_from_messaging, entry_id, entry_time, item, standby=True))


def _guarded(result: ParseResult, build: Callable[[], WebhookEvent | str]) -> None:
    try:
        event = build()
    except (MalformedEventError, TypeError, ValueError, AttributeError):
        result.skipped["malformed"] += 1
        return
    if isinstance(event, str):
        result.skipped[event] += 1
    else:
        result.events.append(event)


def _from_change(entry_id: str, entry_time: float | None, raw: Any) -> WebhookEvent | str:
    if not isinstance(raw, dict) or not isinstance(raw.get("field"), str):
        raise MalformedEventError("a change needs a field")
    change = cast(ChangeShape, raw)
    field_name, value = change["field"], cast(CommentShape, _obj(change.get("value")))
    if field_name == "messages":
        # The dashboard's messages test arrives as a change (docs/instagram.md#loops-and-test-payloads):
        # read it like a messaging item.
        return _from_messaging(entry_id, entry_time, value, standby=False)
    if field_name not in ("comments", "live_comments", "mentions"):
        return "unknown_field"
    comment_id = _str(value.get("id")) or _str(value.get("comment_id"))
    sender, media = _obj(value.get("from")), _obj(value.get("media"))
    media_type = _str(media.get("media_product_type"))
    kind: EventKind
    if field_name == "mentions":
        kind = "mention"
    elif field_name == "live_comments" or (media_type or "").upper() == "LIVE":
        kind = "live_comment"
    else:
        kind = "comment"
    sender_id = _str(sender.get("id"))
    test = entry_id == TEST_ACCOUNT_ID or (sender_id == TEST_FROM_ID and comment_id == TEST_COMMENT_ID)
    return WebhookEvent(
        kind=kind,
        ig_account_id=entry_id,
        event_key=comment_id,
        occurred_at=entry_time,
        sender_id=sender_id,
        sender_username=_str(sender.get("username")),
        text=_str(value.get("text")),
        media_id=_str(media.get("id")) or _str(value.get("media_id")),
        media_product_type=media_type,
        comment_id=comment_id,
        parent_id=_str(value.get("parent_id")),
        ad_id=_str(media.get("ad_id")),
        test_payload=test,
    )


def _from_messaging(entry_id: str, entry_time: float | None, raw: Any, *, standby: bool) -> WebhookEvent:
    if not isinstance(raw, dict):
        raise MalformedEventError("a messaging item must be an object")
    item = cast(MessagingShape, raw)
    common: dict[str, Any] = {
        "ig_account_id": entry_id,
        "occurred_at": epoch_seconds(_num(item.get("timestamp"))) or entry_time,
        "standby": standby,
        "sender_id": _str(_obj(item.get("sender")).get("id")),
        "test_payload": entry_id == TEST_ACCOUNT_ID,
    }
    if isinstance(item.get("message"), dict):
        return _from_message(cast(MessageShape, item.get("message")), common)
    if isinstance(item.get("postback"), dict):
        pb = cast(PostbackShape, item.get("postback"))
        title = _str(pb.get("title"))
        return WebhookEvent(
            kind="postback",
            event_key=_str(pb.get("mid")),
            payload=_str(pb.get("payload")),
            title=title,
            text=title,
            **common,
        )
    if isinstance(item.get("reaction"), dict):
        reaction = cast(ReactionShape, item.get("reaction"))
        return WebhookEvent(
            kind="reaction",
            event_key=_str(reaction.get("mid")),
            reaction=_str(reaction.get("action")),
            **common,
        )
    if isinstance(item.get("read"), dict):
        return WebhookEvent(kind="read", event_key=_str(_obj(item.get("read")).get("mid")), **common)
    if isinstance(item.get("referral"), dict):
        referral = _obj(item.get("referral"))
        return WebhookEvent(
            kind="referral", payload=_str(referral.get("ref")), ad_id=_str(referral.get("ad_id")), **common
        )
    raise MalformedEventError("messaging item with no known event")


def _from_message(message: MessageShape, common: dict[str, Any]) -> WebhookEvent:
    attachments = [_obj(a) for a in _items(message.get("attachments"))]
    attachment_types = [t for t in (_str(a.get("type")) for a in attachments) if t]
    base: dict[str, Any] = {
        "event_key": _str(message.get("mid")),
        "text": _str(message.get("text")),
        "attachment_types": attachment_types,
        **common,
    }
    quick_reply = _str(_obj(message.get("quick_reply")).get("payload"))
    story = _obj(_obj(message.get("reply_to")).get("story"))
    if message.get("is_echo") is True:
        return WebhookEvent(kind="echo", **base)
    if message.get("is_deleted") is True:
        return WebhookEvent(kind="deleted", **base)
    if quick_reply is not None:
        # ``text`` is our button title: by payload, never by keyword (docs/instagram.md#messaging-events).
        return WebhookEvent(kind="quick_reply", payload=quick_reply, **base)
    if "story_mention" in attachment_types:
        return WebhookEvent(kind="story_mention", **base)
    if story:
        return WebhookEvent(kind="story_reply", story_id=_str(story.get("id")), **base)
    if message.get("is_unsupported") is True:
        return WebhookEvent(kind="unsupported", **base)
    if isinstance(message.get("referral"), dict):
        base["ad_id"] = _str(_obj(message.get("referral")).get("ad_id"))
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
