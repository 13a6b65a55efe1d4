"""The lifecycle's vocabulary matches the database, and the sender's pre-send decision is pure."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from replyflow.domain.lifecycle import (
    DecisionReason,
    OutboundStatus,
    SendKind,
    SendStep,
    decide_send,
)

NOW = datetime(2026, 11, 28, 12, 0, 0)


def test_the_enums_keep_the_database_values() -> None:
    assert [s.value for s in OutboundStatus] == [
        "queued",
        "deferred",
        "parked",
        "sending",
        "sent",
        "skipped",
        "failed",
        "unknown",
    ]
    assert [k.value for k in SendKind] == ["private_reply", "public_reply", "dm"]
    assert OutboundStatus.QUEUED == "queued"
    assert f"{DecisionReason.COOLDOWN}" == "cooldown"


def _decide(**overrides: object) -> tuple[SendStep, str | None]:
    facts: dict[str, object] = {
        "status": "queued",
        "error_code": None,
        "kind": "private_reply",
        "not_after": NOW + timedelta(days=1),
        "account_status": "active",
        "account_status_reason": None,
        "now": NOW,
        **overrides,
    }
    decision = decide_send(**facts)  # type: ignore[arg-type]
    return decision.step, decision.reason


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, (SendStep.SEND, None)),
        ({"status": "deferred"}, (SendStep.SEND, None)),
        ({"status": "failed", "error_code": "transient"}, (SendStep.SEND, None)),
        ({"status": "failed", "error_code": "permanent:100"}, (SendStep.NOOP, "failed")),
        ({"status": "sent"}, (SendStep.NOOP, "sent")),
        ({"status": "parked"}, (SendStep.NOOP, "parked")),
        ({"status": "sending"}, (SendStep.IN_FLIGHT, None)),
        ({"account_status": None}, (SendStep.SKIP, "account_missing")),
        ({"account_status": "disabled"}, (SendStep.SKIP, "account_disabled")),
        ({"account_status": "needs_reauth"}, (SendStep.PARK, "needs_reauth")),
        (
            {"account_status": "needs_reauth", "account_status_reason": "policy_block_368"},
            (SendStep.PARK, "policy_block_368"),
        ),
        ({"not_after": NOW - timedelta(seconds=1)}, (SendStep.SKIP, "private_reply_window_expired")),
        ({"not_after": NOW - timedelta(seconds=1), "kind": "dm"}, (SendStep.SKIP, "outside_window")),
        ({"not_after": None}, (SendStep.SEND, None)),
    ],
)
def test_the_send_decision(overrides: dict[str, object], expected: tuple[SendStep, str | None]) -> None:
    assert _decide(**overrides) == expected
