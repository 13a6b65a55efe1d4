"""The flow model's validator and the pure engine: every rule names its step, the 24 h window holds
on every path, and a run advances only on the stimuli its state expects."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from replyflow.domain.flow_engine import (
    AccountFacts,
    ContactFacts,
    EndReason,
    Inbound,
    RunStatus,
    Start,
    StepOutcome,
    TimerFired,
    advance,
    new_run,
)
from replyflow.domain.flows import (
    FOLLOW_GATE_FOLLOWED,
    FOLLOW_GATE_TAP,
    FlowGraph,
    FlowInvalidError,
    follow_gate_graph,
    parse_graph,
)
from replyflow.domain.lifecycle import SendKind

NOW = datetime(2026, 12, 1, 12, 0, 0)


def _send(step_id: str, text: str = "hi", next_: str | None = None, **message: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "send", "message": {"text": text, **message}, "next": next_}


def _issues(graph: dict[str, Any]) -> set[tuple[str | None, str]]:
    with pytest.raises(FlowInvalidError) as caught:
        parse_graph(graph)
    return {(i.step_id, i.rule) for i in caught.value.issues}


def test_the_follow_gate_template_is_valid() -> None:
    graph = parse_graph(follow_gate_graph("Here is the guide", "https://example.com/guide"))
    assert graph.start == "offer"


def test_schema_errors_name_the_step() -> None:
    too_many = [{"type": "postback", "title": f"b{i}", "payload": f"p{i}"} for i in range(4)]
    graph = {"start": "a", "steps": [_send("a", buttons=too_many)]}
    assert _issues(graph) == {("a", "schema")}
    long_text = {"start": "a", "steps": [_send("a", text="é" * 501)]}
    assert _issues(long_text) == {("a", "schema")}


def test_targets_reachability_and_loops() -> None:
    assert _issues({"start": "a", "steps": [_send("a", next_="nope")]}) == {("a", "target_exists")}
    assert _issues({"start": "a", "steps": [_send("a"), _send("b")]}) == {("b", "reachable")}
    spin = {
        "entry": "message",
        "start": "a",
        "steps": [
            {"id": "a", "kind": "tag", "tag": "x", "next": "b"},
            {"id": "b", "kind": "untag", "tag": "x", "next": "a"},
        ],
    }
    assert ("a", "loop_needs_wait") in _issues(spin) or ("b", "loop_needs_wait") in _issues(spin)


def test_a_comment_allows_one_private_reply_before_the_person_answers() -> None:
    graph = {"start": "a", "steps": [_send("a", next_="b"), _send("b")]}
    assert _issues(graph) == {("b", "one_private_reply")}
    # A wait timeout is not an answer either.
    graph = {
        "start": "a",
        "steps": [
            _send("a", next_="w"),
            {"id": "w", "kind": "wait", "routes": {"X": "b"}, "on_timeout": "c"},
            _send("b"),
            _send("c"),
        ],
    }
    assert _issues(graph) == {("c", "one_private_reply")}


def test_delays_must_keep_every_send_within_24_hours_of_the_answer() -> None:
    def graph(first: int, second: int) -> dict[str, Any]:
        return {
            "start": "a",
            "steps": [
                _send("a", next_="w"),
                {"id": "w", "kind": "wait", "routes": {"X": "d1"}},
                {"id": "d1", "kind": "delay", "minutes": first, "next": "d2"},
                {"id": "d2", "kind": "delay", "minutes": second, "next": "b"},
                _send("b"),
            ],
        }

    parse_graph(graph(60 * 12, 60 * 11))
    assert _issues(graph(60 * 12, 60 * 12)) == {("b", "within_24h_window")}


def test_a_loop_of_timeouts_and_delays_is_refused() -> None:
    graph = {
        "entry": "message",
        "start": "w",
        "steps": [
            {"id": "w", "kind": "wait", "routes": {"X": "b"}, "timeout_minutes": 600, "on_timeout": "b"},
            _send("b", next_="w"),
        ],
    }
    assert _issues(graph) == {("b", "within_24h_window")}


def test_capture_must_follow_a_wait() -> None:
    graph = {
        "entry": "message",
        "start": "c",
        "steps": [{"id": "c", "kind": "capture", "field": "email"}],
    }
    assert _issues(graph) == {("c", "capture_after_wait")}


# -- the engine ------------------------------------------------------------------------------------


def _gate() -> FlowGraph:
    return parse_graph(follow_gate_graph("Here is the guide", "https://example.com/guide"))


def test_the_follow_gate_walkthrough() -> None:
    graph, account = _gate(), AccountFacts()
    state = new_run("r1", "igsid-1", graph)
    started = advance(graph, state, Start(at=NOW, comment_id="c1"), ContactFacts(), account, NOW)
    assert [s.kind for s in started.sends] == [SendKind.PRIVATE_REPLY]
    assert started.sends[0].payload["recipient"] == {"comment_id": "c1"}
    assert started.state.status == RunStatus.WAITING
    assert started.timer is not None
    # A text while waiting for a tap is not for this run: keyword automations get it.
    text = Inbound("message", NOW, text="hello")
    assert not advance(graph, started.state, text, ContactFacts(), account, NOW).handled

    follows = [False]
    facts = ContactFacts(follows=lambda: follows[0])
    tap = advance(
        graph, started.state, Inbound("postback", NOW, payload=FOLLOW_GATE_TAP), facts, account, NOW
    )
    assert [s.kind for s in tap.sends] == [SendKind.DM]
    assert tap.sends[0].payload["recipient"] == {"id": "igsid-1"}
    assert "Follow us first" in str(tap.sends[0].payload["message"])
    assert tap.state.step_id == "wait_followed"

    follows[0] = True
    later = NOW + timedelta(minutes=5)
    done = advance(
        graph, tap.state, Inbound("postback", later, payload=FOLLOW_GATE_FOLLOWED), facts, account, later
    )
    assert "https://example.com/guide" in str(done.sends[0].payload["message"])
    assert done.end_reason == EndReason.COMPLETED
    assert done.state.status == RunStatus.COMPLETED
    keys = [s.dedupe_key for s in (*started.sends, *tap.sends, *done.sends)]
    assert len(set(keys)) == 3


def test_capture_a_quick_reply_email_and_delay_once() -> None:
    graph = parse_graph(
        {
            "entry": "message",
            "start": "ask",
            "steps": [
                _send(
                    "ask",
                    text="Your email?",
                    quick_replies=[{"content_type": "user_email"}],
                    next_="w",
                ),
                {"id": "w", "kind": "wait", "on_text": "cap"},
                {"id": "cap", "kind": "capture", "field": "email", "next": "d", "on_invalid": "ask"},
                {"id": "d", "kind": "delay", "minutes": 1, "next": "bye"},
                _send("bye", text="Thanks!"),
            ],
        }
    )
    account = AccountFacts()
    run = advance(graph, new_run("r2", "u", graph), Start(at=NOW, inbound=True), ContactFacts(), account, NOW)
    bad = advance(graph, run.state, Inbound("message", NOW, text="nope"), ContactFacts(), account, NOW)
    assert StepOutcome.INVALID in [d.outcome for d in bad.decisions]
    assert bad.state.step_id == "w"
    reply = Inbound("quick_reply", NOW, payload="Ann@Example.com", text="Ann@Example.com")
    got = advance(graph, bad.state, reply, ContactFacts(), account, NOW)
    assert [(c.op, c.name, c.value) for c in got.changes] == [("set_field", "email", "ann@example.com")]
    assert got.state.status == RunStatus.DELAYED
    assert got.timer is not None
    assert got.timer.due_at == NOW + timedelta(minutes=1)
    fired = TimerFired(got.timer.step_id, got.timer.seq)
    then = NOW + timedelta(minutes=1)
    first = advance(graph, got.state, fired, ContactFacts(), account, then)
    assert [s.payload["message"] for s in first.sends] == [{"text": "Thanks!"}]
    assert first.end_reason == EndReason.COMPLETED
    # The same timer again finds the run moved on.
    assert not advance(graph, first.state, fired, ContactFacts(), account, then).handled


def test_runs_that_cannot_proceed_end_with_the_reason() -> None:
    graph = _gate()
    start = new_run("r3", "u", graph)
    for account, reason in [
        (AccountFacts(status="needs_reauth"), EndReason.NEEDS_REAUTH),
        (AccountFacts(status="disabled"), EndReason.ACCOUNT_DISABLED),
        (AccountFacts(quota_left=0), EndReason.QUOTA_EXCEEDED),
    ]:
        result = advance(graph, start, Start(at=NOW, comment_id="c"), ContactFacts(), account, NOW)
        assert result.sends == []
        assert result.end_reason == reason
        assert result.state.status == RunStatus.ENDED
        assert result.decisions[-1].outcome == StepOutcome.DROPPED
    # A tap a day and a minute later: the window is open again (the tap opens it), so it sends.
    waiting = advance(graph, start, Start(at=NOW, comment_id="c"), ContactFacts(), AccountFacts(), NOW).state
    late = NOW + timedelta(days=1, minutes=1)
    tap = Inbound("postback", late, payload=FOLLOW_GATE_TAP)
    assert advance(graph, waiting, tap, ContactFacts(), AccountFacts(), late).sends
    # The wait times out: the run completes with the reason.
    timeout = TimerFired("wait_tap", waiting.seq)
    out = advance(graph, waiting, timeout, ContactFacts(), AccountFacts(), late)
    assert out.end_reason == EndReason.WAIT_TIMEOUT
    assert out.sends == []


def test_conditions_on_tags_fields_and_a_random_split() -> None:
    graph = parse_graph(
        {
            "entry": "message",
            "start": "t",
            "steps": [
                {"id": "t", "kind": "condition", "test": "has_tag", "tag": "vip", "then": "f", "else": "r"},
                {
                    "id": "f",
                    "kind": "condition",
                    "test": "field_matches",
                    "field": "email",
                    "pattern": "@example\\.com$",
                    "then": "a",
                    "else": "b",
                },
                {"id": "r", "kind": "condition", "test": "random", "percent": 30, "then": "a", "else": "b"},
                {"id": "a", "kind": "tag", "tag": "A"},
                {"id": "b", "kind": "tag", "tag": "B"},
            ],
        }
    )

    def run(facts: ContactFacts) -> str:
        result = advance(
            graph, new_run("r", "u", graph), Start(at=NOW, inbound=True), facts, AccountFacts(), NOW
        )
        return result.changes[0].name

    assert run(ContactFacts(tags=frozenset({"vip"}), fields={"email": "a@example.com"})) == "A"
    assert run(ContactFacts(tags=frozenset({"vip"}), fields={})) == "B"
    assert run(ContactFacts(draw=lambda key: 0.1)) == "A"
    assert run(ContactFacts(draw=lambda key: 0.9)) == "B"


def test_the_cli_builds_taps_the_webhook_reads_as_postbacks_and_quick_replies() -> None:
    from replyflow.domain.webhook_bodies import postback_body, quick_reply_body
    from replyflow.domain.webhook_events import parse_body

    (tap,) = parse_body(postback_body(payload=FOLLOW_GATE_TAP, account="17841400000000001")).events
    assert (tap.kind, tap.payload, tap.sender_id) == ("postback", FOLLOW_GATE_TAP, "7351928465012834")
    (quick,) = parse_body(quick_reply_body(payload="ann@example.com", account="17841400000000001")).events
    assert (quick.kind, quick.payload, quick.text) == ("quick_reply", "ann@example.com", "ann@example.com")
    assert tap.event_key != quick.event_key
