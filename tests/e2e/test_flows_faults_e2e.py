"""Follow-gate conversations under faults through the local stack (``tests/e2e/flow_faults.py`` has the
scenario): MariaDB and a redis-server of the test's own, the people spread over several accounts (each
in its own workspace, within its hourly budget), all conversations open at once, 30 % duplicate
webhooks, a Redis restart mid-run and a sandbox token expiry for one account mid-run. Every
conversation ends in its expected terminal step (the link, the run ``completed``), or, for the people
whose step met the expired token, with the reason logged; no step reaches the sandbox twice, no dedupe
key has two ledger rows and no account sends more than its hourly budget.

``FLOW_FAULTS_CONVERSATIONS`` sets the size (default 150, over 2 accounts: sized for about 3 minutes on
two cores, docs/flows.md has the measured times); the 1,000-conversation run is
``make bench --only flows_faults``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e.flow_faults import accounts_needed, check, faults_stack, play, summary

pytestmark = pytest.mark.e2e

CONVERSATIONS = int(os.environ.get("FLOW_FAULTS_CONVERSATIONS", "150"))


@pytest.fixture
def faults_database() -> Iterator[str]:
    from tests.conftest import fresh_mysql_database

    with fresh_mysql_database("rf_flowfaults") as url:
        yield url


def test_follow_gates_survive_duplicates_a_token_expiry_and_a_redis_restart(faults_database: str) -> None:
    accounts = accounts_needed(CONVERSATIONS)
    with faults_stack(faults_database, accounts=accounts) as (stack, redis_server, ig_ids):
        outcome = play(stack, redis_server, ig_ids, faults_database, conversations=CONVERSATIONS)
        output = stack.output()
    print(f"\nflow faults: {summary(outcome)}")
    problems = check(outcome)
    assert not problems, "\n".join(problems[:40]) + f"\n{summary(outcome)}\n{output[-3000:]}"
    assert len(outcome.events) == 3, outcome.events  # redis stopped, started, the token expired
    assert summary(outcome)["duplicates"] > 0
    assert accounts > 1
