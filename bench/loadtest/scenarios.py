"""The four load scenarios of the scaling guide, as data the runner and the locustfile share.

Pure definitions (no Locust import: ``import locust`` monkey-patches the process with gevent), so the
unit tier can check them. Each scenario names the Locust user class that plays it, how many users and
how fast they arrive, and what its verdict is judged on. Durations are scaled by the runner from one
setting (``LOADTEST_SECONDS`` or ``--seconds``), so a whole run stays within a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

# The guide's targets.
API_P95_MS = 200.0
JOB_P95_MS = 5000.0
QUERY_P95_MS = 100.0


@dataclass(frozen=True)
class Scenario:
    name: str
    user_class: str
    users: int
    spawn_rate: float
    description: str
    # What the verdict looks at: "api" (Locust's p95 of the scenario's requests), "job" (inbound ->
    # DM at the sandbox), "query" (the stack's SQL statements during the scenario).
    judged_on: tuple[str, ...] = ("api", "query")
    share_of_time: float = 0.25
    tasks: tuple[str, ...] = field(default_factory=tuple)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="sessions",
        user_class="DashboardUser",
        users=20,
        # People arrive over ten seconds, not at once: a login is an argon2id verification.
        spawn_rate=2,
        description="concurrent dashboard sessions: log in, then browse accounts, automations, reply "
        "and automation logs, stats (each user its own workspace on the Pro plan)",
        share_of_time=0.3,
        tasks=("login", "accounts", "automations", "reply_logs", "automation_logs", "stats", "me"),
    ),
    Scenario(
        name="webhook_bursts",
        user_class="WebhookBurstUser",
        users=8,
        spawn_rate=8,
        description="Meta's deliveries in bursts: signed comment webhooks of 1-5 entries, about one in "
        "five delivered twice (Meta's redelivery) and some bodies repeating an earlier comment",
        judged_on=("api", "query"),
        tasks=("burst",),
    ),
    Scenario(
        name="dm_sending",
        user_class="DmSendingUser",
        users=10,
        spawn_rate=10,
        description="high-volume DM sending: keyword comments on ten accounts of two Business "
        "workspaces whose hourly send budgets are set just above what the run sends, so the limiter "
        "works near its edge; each comment's private reply is timed at the sandbox",
        judged_on=("api", "job", "query"),
        share_of_time=0.3,
        tasks=("comment",),
    ),
    Scenario(
        name="subscription_spikes",
        user_class="SubscriptionUser",
        users=20,
        spawn_rate=20,
        description="subscription creation spikes: every user arrives at once and changes its "
        "workspace's plan under an Idempotency-Key, replaying about a third of its keys",
        share_of_time=0.2,
        tasks=("change_plan", "replay", "current"),
    ),
)

BY_NAME = {s.name: s for s in SCENARIOS}


def scenario_seconds(total_seconds: float, scenario: Scenario) -> int:
    """A scenario's share of the run's load time, at least 10 s."""
    shares = sum(s.share_of_time for s in SCENARIOS)
    return max(10, round(total_seconds * scenario.share_of_time / shares))


# Webhook bodies -----------------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def new_comment_id() -> str:
    return f"179{secrets.randbelow(10**15):015d}"


def comment_change(comment_id: str, text: str) -> dict[str, Any]:
    commenter = f"7{secrets.randbelow(10**15):015d}"
    return {
        "field": "comments",
        "value": {
            "id": comment_id,
            "text": text,
            "from": {"id": commenter, "username": f"fan_{commenter[-6:]}"},
            "media": {"id": f"18{secrets.randbelow(10**15):015d}", "media_product_type": "FEED"},
        },
    }


def webhook_body(entries: list[tuple[str, str, str]], now: float | None = None) -> bytes:
    """A ``comments`` delivery: one entry per ``(account ig id, comment id, text)``."""
    at = int(now if now is not None else time.time())
    body = {
        "object": "instagram",
        "entry": [
            {"id": account, "time": at, "changes": [comment_change(comment_id, text)]}
            for account, comment_id, text in entries
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def budget_for(comments_per_account: int, headroom: float = 1.1) -> int:
    """An hourly send budget just above what the run sends to an account (near the limit, not over
    it by design; a run that sends more than planned meets the limiter and defers, which is reported)."""
    return max(1, min(750, int(comments_per_account * headroom) + 1))


# The verdict --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    scenario: str
    metric: str
    p95_ms: float | None
    target_ms: float
    samples: int

    @property
    def passed(self) -> bool:
        return self.p95_ms is not None and self.samples > 0 and self.p95_ms < self.target_ms

    def line(self) -> str:
        shown = "no samples" if self.p95_ms is None or not self.samples else f"p95 {self.p95_ms:.1f} ms"
        mark = "PASS" if self.passed else "FAIL"
        target = f"target < {self.target_ms:g} ms (n={self.samples})"
        return f"{mark}  {self.scenario:<20} {self.metric:<6} {shown:<18} {target}"


TARGETS = {"api": API_P95_MS, "job": JOB_P95_MS, "query": QUERY_P95_MS}


def verdict(results: dict[str, dict[str, Any]]) -> list[Check]:
    """One check per scenario and judged metric; ``results[scenario][metric]`` is ``{p95_ms, n}``."""
    checks = []
    for scenario in SCENARIOS:
        measured = results.get(scenario.name, {})
        for metric in scenario.judged_on:
            figure = measured.get(metric) or {}
            checks.append(
                Check(
                    scenario.name,
                    metric,
                    figure.get("p95_ms"),
                    TARGETS[metric],
                    int(figure.get("n") or 0),
                )
            )
    return checks


def histogram_percentile(response_times: dict[Any, int], pct: float) -> float | None:
    """The ``pct`` percentile of Locust's response-time histogram (``{rounded ms: count}``)."""
    total = sum(response_times.values())
    if not total:
        return None
    wanted = total * pct / 100
    seen = 0
    for value, count in sorted((float(k), int(v)) for k, v in response_times.items()):
        seen += count
        if seen >= wanted:
            return value
    return None


# Logins verify an argon2id hash, slow by design (and once per session): reported, not judged.
NOT_JUDGED = frozenset({"POST /v1/auth/login"})


def api_figures(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """p95 over the judged requests of a Locust run (its JSON stats: one entry per request name; all
    but ``NOT_JUDGED``), and the same per request name."""
    merged: dict[float, int] = {}
    per_name: dict[str, Any] = {}
    requests = failures = 0
    for entry in stats:
        times = {float(k): int(v) for k, v in (entry.get("response_times") or {}).items()}
        name = f"{entry.get('method', '')} {entry.get('name', '')}".strip()
        if name not in NOT_JUDGED:
            for value, count in times.items():
                merged[value] = merged.get(value, 0) + count
            requests += int(entry.get("num_requests") or 0)
            failures += int(entry.get("num_failures") or 0)
        per_name[name] = {
            "n": int(entry.get("num_requests") or 0),
            "failures": int(entry.get("num_failures") or 0),
            "p50_ms": histogram_percentile(times, 50),
            "p95_ms": histogram_percentile(times, 95),
            "p99_ms": histogram_percentile(times, 99),
        }
    return {
        "n": requests,
        "failures": failures,
        "p50_ms": histogram_percentile(merged, 50),
        "p95_ms": histogram_percentile(merged, 95),
        "p99_ms": histogram_percentile(merged, 99),
        "requests": per_name,
    }
