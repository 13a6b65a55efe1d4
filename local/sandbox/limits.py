"""Per-account send limits and the ``X-Business-Use-Case-Usage`` header (docs/instagram.md#rate-limits).

Two rolling windows per account: every send call in the last second (against the configurable
per-second cap) and every accepted private reply in the last hour (against Meta's 750/h). Usage, in
percent, is the hourly window only: Meta's BUC usage describes rolling hour-scale windows, and a
per-second burst reported as "90 % used" would make a client pause for minutes over a one-second peak.
A per-second throttle still answers 80002 with the header at 100 %. The sandbox models calls only,
so ``total_cputime`` and ``total_time`` mirror ``call_count``. The header rides on successes once
usage passes 50 %, and on every throttle.
"""

from __future__ import annotations

import json
import math
from collections import deque

from local.sandbox import errors
from local.sandbox.state import Account, SandboxState

# docs/instagram.md#rate-limits: private replies to post and reel comments, per IG professional account.
PRIVATE_REPLIES_PER_HOUR = 750
HOUR_S = 3600.0
SECOND_S = 1.0
# Meta only sends usage headers "once enough calls have been made"
# (docs/instagram.md#usage-headers); the sandbox picks 50 %.
USAGE_HEADER_THRESHOLD_PCT = 50
BUC_USAGE_HEADER = "X-Business-Use-Case-Usage"


def record_call(state: SandboxState, account: Account) -> None:
    """Count a send call against the per-second window, whatever its outcome."""
    account.send_calls.append(state.now())


def record_private_reply(state: SandboxState, account: Account) -> None:
    account.private_replies.append(state.now())


def check(state: SandboxState, account: Account, *, private_reply: bool) -> None:
    """Raise code 80002 with the usage header when the account is throttled."""
    faults = state.faults
    if faults.throttle_next > 0:
        faults.throttle_next -= 1
        raise errors.buc_throttled(usage_header(state, account, regain_s=faults.throttle_seconds, floor=100))
    _prune(account.send_calls, state.now() - SECOND_S)
    if len(account.send_calls) > faults.per_second_cap:
        raise errors.buc_throttled(usage_header(state, account, regain_s=SECOND_S, floor=100))
    if private_reply:
        _prune(account.private_replies, state.now() - HOUR_S)
        if len(account.private_replies) >= PRIVATE_REPLIES_PER_HOUR:
            regain_s = account.private_replies[0] + HOUR_S - state.now()
            raise errors.buc_throttled(usage_header(state, account, regain_s=regain_s, floor=100))


def usage_pct(state: SandboxState, account: Account) -> int:
    now = state.now()
    _prune(account.private_replies, now - HOUR_S)
    return int(100 * len(account.private_replies) / PRIVATE_REPLIES_PER_HOUR)


def usage_header(
    state: SandboxState, account: Account, *, regain_s: float = 0.0, floor: int = 0
) -> dict[str, str]:
    pct = max(usage_pct(state, account), floor)
    entry = {
        "type": "instagram",
        "call_count": pct,
        "total_cputime": pct,
        "total_time": pct,
        "estimated_time_to_regain_access": math.ceil(max(regain_s, 0.0) / 60),
    }
    return {BUC_USAGE_HEADER: json.dumps({account.ig_user_id: [entry]}, separators=(",", ":"))}


def success_headers(state: SandboxState, account: Account) -> dict[str, str]:
    if usage_pct(state, account) <= USAGE_HEADER_THRESHOLD_PCT:
        return {}
    return usage_header(state, account)


def _prune(window: deque[float], cutoff: float) -> None:
    while window and window[0] <= cutoff:
        window.popleft()
