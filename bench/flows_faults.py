"""Follow-gate conversations under faults on the local stack (``tests/e2e/flow_faults.py`` has the
scenario, the e2e test runs it small): a fresh MariaDB database, a redis-server of the bench's own,
``conversations`` people (at most 300: one account's hourly cap) from 8 threads, 30 % duplicate
webhooks, a Redis restart once 30 % have finished and a sandbox token expiry mid-conversation for
the last 5 %. The suite fails when any conversation does not end as expected
(:func:`tests.e2e.flow_faults.check`); the row reports the tap -> link latency of the completed
conversations (the last tap before the link: ``GET_LINK`` for people who followed, ``I_FOLLOWED``
for the others), the wall time and the counts.
"""

from __future__ import annotations

from typing import Any

from bench.stats import summarize
from bench.support import progress

# The limiter never lets one account send more than 750 DMs an hour (settings cap the budget there);
# a conversation sends 2 or 3 (2.5 on average). 1,000 conversations need four accounts: not built.
HOURLY_CAP = 750
DMS_PER_CONVERSATION = 2.5


def run(conversations: int = 280) -> list[dict[str, Any]]:
    if conversations * DMS_PER_CONVERSATION > HOURLY_CAP:
        raise ValueError(
            f"{conversations} conversations send about {conversations * DMS_PER_CONVERSATION:.0f} DMs"
            f" from one account: more than the {HOURLY_CAP} an account may send in an hour"
        )
    from tests.conftest import fresh_mysql_database
    from tests.e2e.flow_faults import check, faults_stack, play, summary

    with fresh_mysql_database("rf_bench_flowfaults") as url, faults_stack(url) as (stack, redis, account):
        progress(f"flows_faults: {conversations} follow-gate conversations with faults")
        outcome = play(stack, redis, account, url, conversations=conversations)
    problems = check(outcome)
    if problems:
        raise RuntimeError(f"{len(problems)} problems, first: {problems[:5]}")
    facts = summary(outcome)
    per_second = round(facts["conversations"] / outcome.seconds, 1)
    note = {
        "per_second": per_second,
        "backing": "local stack: MariaDB, a private redis-server (restarted mid-run), sandbox 0 ms",
        **{k: v for k, v in facts.items() if k != "events"},
    }
    return [summarize("flow faults: last tap -> link at the sandbox", outcome.tap_to_link_ms, **note)]
