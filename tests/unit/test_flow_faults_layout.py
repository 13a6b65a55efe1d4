"""How the fault scenario (tests/e2e/flow_faults.py) spreads people over accounts: no account above
what its hourly budget allows, the expiring account first and half expiring."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.e2e.flow_faults import HOURLY_CAP, MAX_DMS_PER_CONVERSATION, PER_ACCOUNT, accounts_needed, layout


@pytest.mark.parametrize("conversations", [1, 60, 250, 1000, 2000])
def test_no_account_gets_more_conversations_than_its_budget_allows(conversations: int) -> None:
    people = layout(conversations, 0.05)
    per_account = Counter(p.account for p in people)

    assert len(people) == conversations
    assert max(per_account.values()) * MAX_DMS_PER_CONVERSATION <= HOURLY_CAP
    assert sorted(per_account) == list(range(accounts_needed(conversations)))
    assert len({p.igsid for p in people}) == len({p.comment_id for p in people}) == conversations


def test_a_thousand_take_five_accounts_and_the_expiring_one_comes_first() -> None:
    people = layout(1000, 0.05)
    first = [p for p in people if p.account == 0]

    assert accounts_needed(1000) == 5
    assert first == people[: len(first)]
    assert [p.expired for p in first] == [False] * 50 + [True] * 50
    assert not any(p.expired for p in people[len(first) :])


def test_without_an_expiry_everyone_is_dealt_round_robin() -> None:
    people = layout(2 * PER_ACCOUNT + 1, 0.0)

    assert not any(p.expired for p in people)
    assert Counter(p.account for p in people) == {0: 167, 1: 167, 2: 167}
    assert [p.account for p in people[:4]] == [0, 1, 2, 0]
