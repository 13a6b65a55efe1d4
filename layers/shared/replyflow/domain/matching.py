"""Triggers and keyword matching: which automations an event matches, and in which order they win.

Normalisation (docs/instagram.md#keyword-matching): Unicode NFKD, accents (combining marks) dropped,
casefolded; every character that is not a letter or a digit (emoji and their variation selectors, punctuation,
bidi and format marks, spaces) is a word boundary. Texts are never truncated before matching. A
keyword with no letters or digits (an emoji keyword) is matched as a casefolded substring of the raw
text.

Match modes, over several keywords (any one keyword matching is enough):
- ``any``: every event of the trigger matches (no keywords needed);
- ``contains``: the keyword's words appear in the text, possibly inside longer words ("link" in
  "linked");
- ``whole_word``: the keyword's words appear as whole words, in order ("link" in "LINK please 🙏",
  not in "linked");
- ``exact``: the whole text is the keyword, ignoring case, accents, emoji and punctuation around it.
``exact`` implies ``whole_word`` implies ``contains``.

Triggers -> event kinds: ``comment`` (comments on posts, reels, ads; optionally only the listed
``media_ids``), ``live_comment``, ``dm_keyword`` (plain DM text; never a quick-reply tap, whose text is
our own button title), ``story_mention`` (no text: always matches), ``story_reply`` (the reply's text;
``media_ids`` may list story ids), ``postback`` (button and icebreaker payloads, and quick-reply
payloads too), ``quick_reply`` (quick-reply payloads only). Payload triggers match the payload, not
the title.

**When several automations match one event** (the rule, applied by the processor):
1. candidates are ordered by ``priority`` ascending (lower runs first), then ``created_at`` (older
   first), then id;
2. walking that order, a candidate in cooldown for this contact is skipped (logged ``cooldown``);
3. the first candidate not in cooldown **wins**, and all of its actions are planned (each still subject
   to its own rules: windows, quota, top-level comment, ...);
4. every other candidate is logged as skipped with reason ``superseded``.
So one event produces at most one message of each kind, from one automation.

**Matching options** (per automation):
- ``exclude_keywords``: words that veto the match: if any matches the text under ``contains`` (the
  broadest mode), the automation does not match, whatever its keywords say;
- ``entries``: extra keyword sets, each with its own keywords and match mode; the automation matches
  when its own keywords or any entry match, and :attr:`Match.entry` says which (0: its own keywords,
  ``n``: the n-th entry), so a flow can start differently per entry;
- ``once_per_post``: a person is answered at most once per post by this automation (a second comment
  of theirs on the post is skipped ``once_per_post``, and the next candidate may win);
- ``new_contacts_only``: only people who were not contacts of the account before this event (skipped
  ``not_new_contact``). A contact pruned by retention is new again.
The two last ones are decided in the walk above, before the cooldown (``domain.lifecycle``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from replyflow.domain.webhook_events import WebhookEvent

MATCH_MODES = ("any", "contains", "whole_word", "exact")
_MODE_ALIASES = {"whole-word": "whole_word", "word": "whole_word", "wholeword": "whole_word"}

TRIGGER_KINDS: dict[str, frozenset[str]] = {
    "comment": frozenset({"comment"}),
    "live_comment": frozenset({"live_comment"}),
    "dm_keyword": frozenset({"message"}),
    "story_mention": frozenset({"story_mention"}),
    "story_reply": frozenset({"story_reply"}),
    "postback": frozenset({"postback", "quick_reply"}),
    "quick_reply": frozenset({"quick_reply"}),
}
PAYLOAD_KINDS = frozenset({"postback", "quick_reply"})


def _strip_accents(text: str) -> str:
    # Only combining marks that attach to a letter (accents: canonical combining class > 0) go;
    # variation selectors (the U+FE0F of "❤️") have class 0 and stay, to act as boundaries.
    return "".join(
        ch
        for ch in unicodedata.normalize("NFKD", text)
        if not (unicodedata.category(ch) == "Mn" and unicodedata.combining(ch))
    )


def _word_char(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category[0] in "LN" or category == "Mc"  # Mc: spacing vowel signs inside words


def normalize(text: str) -> str:
    """Words of ``text``, lower-cased and accent-free, joined by single spaces."""
    # Casefolding can itself produce combining marks ("İ" -> "i̇"), hence the second pass.
    folded = _strip_accents(_strip_accents(text).casefold())
    return " ".join("".join(ch if _word_char(ch) else " " for ch in folded).split())


def normalize_mode(mode: str | None) -> str:
    value = (mode or "contains").strip().lower()
    value = _MODE_ALIASES.get(value, value)
    return value if value in MATCH_MODES else "contains"


def match_keyword(text: str | None, keywords: Iterable[str], mode: str) -> str | None:
    """The first keyword that matches ``text`` under ``mode`` ("" for mode ``any``), else None."""
    mode = normalize_mode(mode)
    if mode == "any":
        return ""
    if not text:
        return None
    words = normalize(text)
    padded = f" {words} "
    for keyword in keywords:
        wanted = normalize(keyword)
        if not wanted:
            symbol = keyword.strip().casefold()
            if symbol and symbol in text.casefold():
                return keyword
            continue
        if (
            (mode == "exact" and words == wanted)
            or (mode == "whole_word" and f" {wanted} " in padded)
            or (mode == "contains" and wanted in words)
        ):
            return keyword
    return None


@dataclass(frozen=True)
class Entry:
    """One extra keyword set of an automation."""

    keywords: tuple[str, ...]
    match_mode: str = "contains"

    @classmethod
    def from_json(cls, data: Any) -> Entry:
        data = data if isinstance(data, dict) else {}
        return cls(
            keywords=tuple(str(k) for k in data.get("keywords") or ()),
            match_mode=normalize_mode(data.get("match_mode")),
        )

    def to_json(self) -> dict[str, Any]:
        return {"keywords": list(self.keywords), "match_mode": self.match_mode}


@dataclass(frozen=True)
class Rule:
    """An active automation, as the processor caches it (templates resolved into ``actions``)."""

    id: str
    name: str
    trigger: str
    match_mode: str
    keywords: tuple[str, ...]
    media_ids: tuple[str, ...] | None
    actions: dict[str, Any]
    cooldown_seconds: int = 0
    priority: int = 100
    created_at: str = ""
    exclude_keywords: tuple[str, ...] = ()
    entries: tuple[Entry, ...] = ()
    once_per_post: bool = False
    new_contacts_only: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rule:
        media = data.get("media_ids")
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            trigger=str(data["trigger"]),
            match_mode=normalize_mode(data.get("match_mode")),
            keywords=tuple(str(k) for k in data.get("keywords") or ()),
            media_ids=tuple(str(m) for m in media) if media else None,
            actions=dict(data.get("actions") or {}),
            cooldown_seconds=int(data.get("cooldown_seconds") or 0),
            priority=_int(data.get("priority"), 100),
            created_at=str(data.get("created_at") or ""),
            exclude_keywords=tuple(str(k) for k in data.get("exclude_keywords") or ()),
            entries=tuple(Entry.from_json(e) for e in data.get("entries") or ()),
            once_per_post=bool(data.get("once_per_post")),
            new_contacts_only=bool(data.get("new_contacts_only")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "trigger": self.trigger,
            "match_mode": self.match_mode,
            "keywords": list(self.keywords),
            "media_ids": list(self.media_ids) if self.media_ids is not None else None,
            "actions": self.actions,
            "cooldown_seconds": self.cooldown_seconds,
            "priority": self.priority,
            "created_at": self.created_at,
            "exclude_keywords": list(self.exclude_keywords),
            "entries": [entry.to_json() for entry in self.entries],
            "once_per_post": self.once_per_post,
            "new_contacts_only": self.new_contacts_only,
        }


@dataclass(frozen=True)
class Match:
    rule: Rule
    keyword: str
    entry: int = 0  # 0: the automation's own keywords; n: its n-th entry


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def subject_text(event: WebhookEvent) -> str | None:
    """What keywords are matched against: the payload of a tap, else the text."""
    return event.payload if event.kind in PAYLOAD_KINDS else event.text


def in_scope(rule: Rule, event: WebhookEvent) -> bool:
    if not rule.media_ids:
        return True
    target = event.story_id if event.kind == "story_reply" else event.media_id
    return target is not None and target in rule.media_ids


def excluded_by(rule: Rule, event: WebhookEvent) -> str | None:
    """The exclude keyword found in the event's text (``contains``), or None."""
    if not rule.exclude_keywords or event.kind == "story_mention":
        return None
    return match_keyword(subject_text(event), rule.exclude_keywords, "contains")


def entry_matches(rule: Rule, event: WebhookEvent) -> tuple[int, str] | None:
    """(entry, keyword) of the first keyword set that matches, ignoring trigger, scope and excludes."""
    if event.kind == "story_mention":
        return (0, "")  # a mention carries no text to match
    subject = subject_text(event)
    sets = [(rule.keywords, rule.match_mode), *((e.keywords, e.match_mode) for e in rule.entries)]
    for index, (keywords, mode) in enumerate(sets):
        keyword = match_keyword(subject, keywords, mode)
        if keyword is not None:
            return (index, keyword)
    return None


def match_of(rule: Rule, event: WebhookEvent) -> Match | None:
    """The rule's match on ``event`` (module docstring), or None."""
    if event.kind not in TRIGGER_KINDS.get(rule.trigger, frozenset()):
        return None
    if not in_scope(rule, event):
        return None
    if excluded_by(rule, event) is not None:
        return None
    found = entry_matches(rule, event)
    return Match(rule, found[1], found[0]) if found is not None else None


def rule_matches(rule: Rule, event: WebhookEvent) -> str | None:
    """The matched keyword ("" when no keyword is needed), or None."""
    found = match_of(rule, event)
    return found.keyword if found is not None else None


def order_key(rule: Rule) -> tuple[int, str, str]:
    return (rule.priority, rule.created_at, rule.id)


def matching_rules(rules: Sequence[Rule], event: WebhookEvent) -> list[Match]:
    """Every rule that matches ``event``, in the order in which they win (module docstring)."""
    found = []
    for rule in sorted(rules, key=order_key):
        match = match_of(rule, event)
        if match is not None:
            found.append(match)
    return found
