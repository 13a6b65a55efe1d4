"""Flow-step latency over HTTP on the local stack (started like ``bench/e2e.py``): the follow gate
(``POST /v1/flows/follow-gate``), one conversation per person, one after the other.

Per conversation (not timed): a comment on the gate's keyword, registered with the sandbox, and its
private reply awaited; the person registered with the sandbox as having written (the consent) and as
following the account. Timed: the tap (a signed ``postback`` webhook, ``GET_LINK``) -> the link DM
at the sandbox: ``received_at`` of that DM minus the ``time.time()`` just before the POST left. That
step is the webhook, the events queue, the processor routing the tap to the waiting run, the User
Profile API read at the sandbox, the engine's advance and its ledger row, the sends queue and the
sender's Send API call.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stats import summarize
from bench.support import new_comment_id, progress

HOURLY_BUDGET = 750
KEYWORD = "GATE"


def _login(stack: Any) -> dict[str, str]:
    from replyflow.services.demo_seed import DEMO_EMAIL, DEMO_PASSWORD

    login = stack.request("POST", "/v1/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _wait_for(stack: Any, account: str, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        messages = stack.sandbox_messages(account_id=account)
        if len(messages) >= count:
            return messages
        time.sleep(0.005)
    raise RuntimeError(f"the sandbox has fewer than {count} messages after {timeout_s} s")


def _conversation(stack: Any, account: str, index: int, seen: int) -> float:
    """One gate conversation; the tap -> link latency in ms."""
    from replyflow.domain.flows import FOLLOW_GATE_TAP
    from replyflow.domain.webhook_bodies import comment_body, postback_body

    person = f"77{index:013d}"
    comment = comment_body(text=KEYWORD, account=account, comment_id=new_comment_id(), from_id=person)
    stack.register_comment(comment)
    stack.post_webhook(comment).raise_for_status()
    _wait_for(stack, account, seen + 1)
    sandbox = stack.sandbox_url
    stack.client.post(
        f"{sandbox}/_sandbox/inbound", json={"account_id": account, "sender_id": person}
    ).raise_for_status()
    stack.client.post(
        f"{sandbox}/_sandbox/users/{person}/follows", json={"account_id": account, "follows": True}
    ).raise_for_status()
    body = json.dumps(postback_body(payload=FOLLOW_GATE_TAP, account=account, from_id=person)).encode()
    sent_at = time.time()
    stack.post_webhook(body).raise_for_status()
    link = _wait_for(stack, account, seen + 2)[-1]
    return (float(link["received_at"]) - sent_at) * 1000


def run(conversations: int = 100) -> list[dict[str, Any]]:
    from replyflow.services.demo_seed import DEMO_IG_USER_ID
    from tests.e2e.conftest import launch

    if 2 * conversations > HOURLY_BUDGET:
        raise ValueError(f"{2 * conversations} DMs to one account would pass its hourly budget")
    with tempfile.TemporaryDirectory(prefix="rf-bench-flows-") as tmp:
        workdir = Path(tmp)
        progress("flows: starting the local stack (subprocess)")
        stack = launch(workdir, extra_args=["--visibility-scale", "1"], env={"PER_SECOND_SEND_CAP": "100"})
        try:
            with sqlite3.connect(workdir / "e2e.db") as conn:
                conn.execute(
                    "UPDATE instagram_accounts SET hourly_send_budget = ? WHERE ig_user_id = ?",
                    (HOURLY_BUDGET, DEMO_IG_USER_ID),
                )
            auth = _login(stack)
            accounts = stack.request("GET", "/v1/accounts", headers=auth).json()
            items = accounts["items"] if isinstance(accounts, dict) else accounts
            account_id = next(a["id"] for a in items if a["ig_user_id"] == DEMO_IG_USER_ID)
            gate = stack.request(
                "POST",
                "/v1/flows/follow-gate",
                headers=auth,
                json={
                    "account_id": account_id,
                    "keyword": KEYWORD,
                    "message": "Guide",
                    "link": "https://x.example",
                },
            )
            gate.raise_for_status()
            stack.clear_sandbox_messages()
            progress(f"flows: {conversations} follow-gate conversations, one after the other")
            _conversation(stack, DEMO_IG_USER_ID, 0, 0)  # warm-up, not counted
            samples = [_conversation(stack, DEMO_IG_USER_ID, i, 2 * i) for i in range(1, conversations + 1)]
        finally:
            stack.stop()
    note = {"backing": "local stack: SQLite, fakeredis, in-process broker, sandbox 0 ms"}
    return [summarize("flow step: tap -> next message at the sandbox", samples, **note)]
