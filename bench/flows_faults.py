"""Follow-gate conversations under faults on the local stack (``tests/e2e/flow_faults.py`` has the
scenario, the e2e test runs it smaller): a fresh MariaDB database, a redis-server of the bench's own,
``conversations`` people spread over as many accounts as their hourly budgets need (each account in a
workspace of its own, at most 250 conversations of up to 3 DMs under the 750-an-hour ceiling), every
conversation open at once, 30 % duplicate webhooks, a Redis restart once 30 % have finished and a
sandbox token expiry mid-run for one account (5 % of the people hold their tap until it happened).
The suite fails when any conversation does not end as expected (:func:`tests.e2e.flow_faults.check`).

Rows: the flow-step latency, every tap -> the next message at the sandbox (``GET_LINK`` -> the link or
"follow us first", ``I_FOLLOWED`` -> the link: ``received_at`` at the sandbox minus ``time.time()``
just before the tap's POST), then the last tap -> link alone and comment -> private reply; with the
wall time and the fault counts.
"""

from __future__ import annotations

from typing import Any

from bench.stats import summarize
from bench.support import progress


def run(conversations: int = 1000) -> list[dict[str, Any]]:
    from tests.conftest import fresh_mysql_database
    from tests.e2e.flow_faults import accounts_needed, check, faults_stack, play, summary

    accounts = accounts_needed(conversations)
    with (
        fresh_mysql_database("rf_bench_flowfaults") as url,
        faults_stack(url, accounts=accounts) as (stack, redis, ig_ids),
    ):
        progress(f"flows_faults: {conversations} follow-gate conversations on {accounts} accounts")
        outcome = play(stack, redis, ig_ids, url, conversations=conversations)
    facts = summary(outcome)
    progress(f"flows_faults: {facts}")
    problems = check(outcome)
    if problems:
        raise RuntimeError(f"{len(problems)} problems, first: {problems[:5]}")
    note = {
        "per_second": round(facts["conversations"] / outcome.seconds, 1),
        "backing": "local stack: MariaDB, a private redis-server (restarted mid-run), sandbox 0 ms",
        **{k: v for k, v in facts.items() if k != "events"},
        "events": "; ".join(facts["events"]),
    }
    steps = [ms for label, samples in outcome.step_ms.items() if label != "comment" for ms in samples]
    return [
        summarize("flow faults: every tap -> next message at the sandbox", steps, **note),
        summarize("flow faults: last tap -> link", outcome.tap_to_link_ms),
        summarize("flow faults: comment -> private reply", outcome.step_ms.get("comment", [])),
    ]
