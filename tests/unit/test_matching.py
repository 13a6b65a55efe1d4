"""Keyword matching (examples and hypothesis properties), triggers, scope and the several-matches rule."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from replyflow.domain.matching import Rule, match_keyword, matching_rules, normalize
from replyflow.domain.webhook_events import WebhookEvent, parse_body
from tests.conftest import load_event

LETTERS = string.ascii_letters + "éèàüöñçÉÀÜ"
words = st.text(alphabet=LETTERS + string.digits, min_size=1, max_size=12)
separators = st.text(alphabet=" .,!?¿¡-_/()\"'🙏🔥❤️😍\u200f\u200b\n\t", min_size=1, max_size=4)
fillers = st.lists(words, max_size=4).map(" ".join)


def test_examples() -> None:
    assert match_keyword("LINK", ["link"], "exact") == "link"
    assert match_keyword("LINK 🔥", ["link"], "exact") == "link"
    assert match_keyword("@maya same here, LINK please 🙏", ["link"], "whole_word") == "link"
    assert match_keyword("linked", ["link"], "whole_word") is None
    assert match_keyword("linked", ["link"], "contains") == "link"
    assert match_keyword("Qué precio?", ["precio", "que"], "whole_word") == "precio"
    assert match_keyword("QUE PRECIO", ["qué precio"], "exact") == "qué precio"
    assert match_keyword("send the\u200fguide", ["the guide"], "whole_word") == "the guide"
    assert match_keyword("anything", [], "any") == ""
    assert match_keyword(None, ["x"], "contains") is None
    assert match_keyword("I want 🔥🔥", ["🔥"], "contains") == "🔥"  # emoji keywords
    assert match_keyword("x" * 3000 + " link", ["link"], "whole_word") == "link"  # never truncated
    assert normalize("\uff2c\uff49\uff4e\uff4b") == "link"  # NFKD folds full-width forms


@given(keyword=words, before=fillers, after=fillers, sep1=separators, sep2=separators, upper=st.booleans())
@settings(max_examples=200, deadline=None)
def test_a_keyword_surrounded_by_separators_matches_as_a_whole_word(
    keyword: str, before: str, after: str, sep1: str, sep2: str, upper: bool
) -> None:
    shown = keyword.upper() if upper else keyword.lower()
    text = f"{before}{sep1}{shown}{sep2}{after}"
    assert match_keyword(text, [keyword], "whole_word") == keyword
    assert match_keyword(text, [keyword], "contains") == keyword


@given(keyword=words, sep1=separators, sep2=separators)
@settings(max_examples=200, deadline=None)
def test_exact_ignores_surrounding_emoji_and_punctuation(keyword: str, sep1: str, sep2: str) -> None:
    assert match_keyword(f"{sep1}{keyword.swapcase()}{sep2}", [keyword], "exact") == keyword


@given(text=st.text(alphabet=LETTERS + " .!🔥", max_size=40), keyword=words)
@settings(max_examples=300, deadline=None)
def test_accents_and_case_never_change_the_outcome(text: str, keyword: str) -> None:
    accented = "".join(ch + "\u0301" if ch.isalpha() else ch for ch in text)
    for mode in ("contains", "whole_word", "exact"):
        expected = match_keyword(text, [keyword], mode)
        assert match_keyword(accented, [keyword], mode) == expected
        assert match_keyword(text.upper(), [keyword], mode) == expected
        assert match_keyword(text, [keyword.upper()], mode) == (keyword.upper() if expected else None)


@given(text=st.text(max_size=60), keyword=words)
@settings(max_examples=300, deadline=None)
def test_modes_are_nested(text: str, keyword: str) -> None:
    if match_keyword(text, [keyword], "exact"):
        assert match_keyword(text, [keyword], "whole_word")
    if match_keyword(text, [keyword], "whole_word"):
        assert match_keyword(text, [keyword], "contains")


@given(keyword=st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=8))
def test_a_keyword_inside_a_longer_word_is_not_a_whole_word(keyword: str) -> None:
    text = f"x{keyword}y"
    assert match_keyword(text, [keyword], "whole_word") is None
    assert match_keyword(text, [keyword], "contains") == keyword


@given(keywords=st.lists(words, min_size=1, max_size=5), pick=st.integers(min_value=0, max_value=4))
def test_any_of_several_keywords(keywords: list[str], pick: int) -> None:
    chosen = keywords[pick % len(keywords)]
    assert match_keyword(f"hey {chosen}!", keywords, "whole_word") is not None


# -- triggers, scope and the order of several matches ---------------------------------------------


def rule(rule_id: str, trigger: str = "comment", **kw: object) -> Rule:
    data = {"id": rule_id, "trigger": trigger, "match_mode": "whole_word", "keywords": ["link"], **kw}
    return Rule.from_json(data)


def event(name: str) -> WebhookEvent:
    return parse_body(load_event(name)).events[0]


def test_triggers_map_to_their_events() -> None:
    rules = [
        rule("c"),
        rule("l", "live_comment"),
        rule("d", "dm_keyword"),
        rule("s", "story_mention", match_mode="any", keywords=[]),
        rule("r", "story_reply", match_mode="any", keywords=[]),
        rule("p", "postback", match_mode="exact", keywords=["GET_GUIDE", "SEND_LINK"]),
        rule("q", "quick_reply", match_mode="exact", keywords=["SEND_LINK"]),
    ]
    ids = lambda name: [m.rule.id for m in matching_rules(rules, event(name))]  # noqa: E731
    assert ids("comment_feed.json") == ["c"]
    assert ids("comment_reply.json") == ["c"]
    assert ids("live_comment.json") == ["l"]
    assert ids("dm_text.json") == ["d"]
    assert ids("dm_story_mention.json") == ["s"]
    assert ids("dm_story_reply.json") == ["r"]
    assert ids("dm_postback.json") == ["p"]
    # A quick-reply tap routes by payload; its text (our button title "Send link") never fires dm_keyword.
    assert sorted(ids("dm_quick_reply.json")) == ["p", "q"]


def test_media_scope() -> None:
    scoped = rule("c", media_ids=["18034567890123456"])
    other = rule("o", media_ids=["999"])
    assert [m.rule.id for m in matching_rules([scoped, other], event("comment_feed.json"))] == ["c"]


def test_several_matches_are_ordered_by_priority_then_age() -> None:
    rules = [
        rule("late", priority=10, created_at="2026-02-01T00:00:00"),
        rule("early", priority=10, created_at="2026-01-01T00:00:00"),
        rule("first", priority=1, created_at="2026-03-01T00:00:00"),
        rule("default", created_at="2025-01-01T00:00:00"),
    ]
    assert [m.rule.id for m in matching_rules(rules, event("comment_feed.json"))] == [
        "first",
        "early",
        "late",
        "default",
    ]
