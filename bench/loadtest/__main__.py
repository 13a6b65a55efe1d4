"""``python -m bench.loadtest [--seconds N] [--only NAME ...]`` (``make loadtest``): the four load
scenarios of the scaling guide with Locust, headless, against the local stack on MariaDB + Redis.

1. A fresh, migrated MariaDB database of its own (dropped at the end) and a redis-server of its own
   on a free port; the local stack (``bench.loadtest.timed_stack``: ``python -m local run`` with every
   SQL statement timed) on free ports, sandbox included, ``PER_SECOND_SEND_CAP=100``.
2. Seeding through the stack's own API, each workspace from a loopback address of its own (the API
   limits signups per address): 10 dashboard workspaces on Pro (one sandbox account, a template, an
   automation, 3,000 reply and automation log rows each), 10 workspaces whose owners change plans,
   two Business workspaces with five sandbox accounts each for DM sending; the DM accounts' hourly
   send budgets are set just above what the scenario will send to each.
3. The scenarios in turn (``bench.loadtest.scenarios``), each a Locust run of its own user class for
   its share of ``--seconds`` (default ``LOADTEST_SECONDS`` or 120): HTML report per scenario,
   Locust's JSON stats, then the stack is let drain (queues idle) before the next.
4. Figures per scenario: API latency from Locust (every request of the scenario but the logins,
   argon2id by design, which are reported beside), job latency (the
   DM scenario: the private reply's arrival at the sandbox minus the moment its comment's webhook
   POST left), query latency (the stack's SQL statements that ended within the scenario's window and
   drain). Written to ``bench/results/loadtest-<stamp>.json`` with an index page
   ``loadtest-<stamp>.html`` linking the reports; the verdict against the guide's targets is printed.

Exit status 0 when every check passes, 1 otherwise. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.loadtest.scenarios import (
    BY_NAME,
    SCENARIOS,
    Scenario,
    api_figures,
    budget_for,
    scenario_seconds,
    verdict,
)
from bench.stats import MACHINE_NOTE, RESULTS_DIR, machine, percentile

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
PASSWORD = "correct horse battery staple"
DASHBOARD_TENANTS = 10
SUBSCRIPTION_TENANTS = 10
DM_TENANTS = 2
DM_ACCOUNTS_PER_TENANT = 5
LOG_ROWS_PER_TENANT = 3000
DM_RATE_PER_ACCOUNT = 1.5  # comments/s per account: 10 accounts, 15 DMs/s offered
DRAIN_TIMEOUT_S = 90.0


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


# Seeding ------------------------------------------------------------------------------------------


class Seeder:
    """Calls the stack's API, one loopback source address per workspace."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.n = 0

    @contextmanager
    def client(self) -> Iterator[Any]:
        import httpx

        self.n += 1
        address = f"127.0.{200 + self.n // 250}.{1 + self.n % 250}"
        transport = httpx.HTTPTransport(local_address=address)
        with httpx.Client(base_url=self.api_url, transport=transport, timeout=30) as client:
            yield client

    def workspace(self, label: str, plan: str | None, accounts: int) -> dict[str, Any]:
        email = f"{label}-{secrets.token_hex(4)}@load.example"
        with self.client() as client:
            signup = client.post(
                "/v1/auth/signup", json={"email": email, "password": PASSWORD, "workspace_name": label}
            )
            _ok(signup, 201)
            auth = {"Authorization": f"Bearer {signup.json()['access_token']}"}
            if plan:
                _ok(client.post("/v1/subscriptions", json={"plan_code": plan}, headers=auth), 200)
            made: list[dict[str, str]] = []
            template_id = None
            for _ in range(accounts):
                ig = f"17841{secrets.randbelow(10**10):010d}"
                account = client.post(
                    "/v1/accounts/sandbox", json={"ig_user_id": ig, "username": f"{label}.shop"}, headers=auth
                )
                _ok(account, 201)
                if template_id is None:
                    template = client.post(
                        "/v1/templates",
                        json={"name": "link", "text": "Hi {{username}}, here it is"},
                        headers=auth,
                    )
                    _ok(template, 201)
                    template_id = template.json()["id"]
                automation = client.post(
                    "/v1/automations",
                    headers=auth,
                    json={
                        "account_id": account.json()["id"],
                        "name": "LINK -> DM",
                        "trigger": "comment",
                        "match_mode": "whole_word",
                        "keywords": ["link"],
                        "actions": {"private_reply": {"template_id": template_id}},
                        "cooldown_seconds": 0,
                    },
                )
                _ok(automation, 201)
                made.append({"id": account.json()["id"], "ig_user_id": ig})
        return {
            "email": email,
            "password": PASSWORD,
            "tenant_id": signup.json()["tenant_id"],
            "accounts": made,
        }


def _ok(response: Any, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text[:400]}"
        )


def _bulk_logs(database_url: str, tenants: list[dict[str, Any]], rows: int) -> None:
    """``rows`` reply and automation log rows per workspace over the last 30 days (MariaDB's Sequence
    engine), so the log pages and stats read real indexes."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    step = max(1, 30 * 86400 // rows)
    try:
        with engine.begin() as conn:
            for tenant in tenants:
                params = {"t": tenant["tenant_id"], "a": tenant["accounts"][0]["id"]}
                conn.execute(
                    sa.text(
                        "INSERT INTO reply_logs (tenant_id, account_id, kind, status, recipient_id,"
                        " comment_id, text, created_at) SELECT :t, :a, 'private_reply',"
                        " ELT(1 + seq % 5, 'sent', 'sent', 'sent', 'failed', 'skipped'), CONCAT('7', seq),"
                        " CONCAT('179', seq), 'Hi there, here is your link',"
                        f" UTC_TIMESTAMP() - INTERVAL (seq * {step}) SECOND FROM seq_1_to_{rows}"
                    ),
                    params,
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO automation_logs (tenant_id, account_id, event_key, action,"
                        " created_at) SELECT :t, :a, CONCAT('179', seq),"
                        " ELT(1 + seq % 3, 'matched', 'queued', 'skipped'),"
                        f" UTC_TIMESTAMP() - INTERVAL (seq * {step}) SECOND FROM seq_1_to_{rows}"
                    ),
                    params,
                )
    finally:
        engine.dispose()


def _set_budgets(database_url: str, account_ids: list[str], budget: int) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for account_id in account_ids:
                conn.execute(
                    sa.text("UPDATE instagram_accounts SET hourly_send_budget = :b WHERE id = :a"),
                    {"b": budget, "a": account_id},
                )
    finally:
        engine.dispose()


def _send_outcomes(database_url: str, account_ids: list[str]) -> dict[str, int]:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT status, COUNT(*) FROM outbound_messages WHERE account_id IN :ids GROUP BY status"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                {"ids": account_ids},
            ).all()
    finally:
        engine.dispose()
    return {str(status): int(n) for status, n in rows}


# One scenario ---------------------------------------------------------------------------------------


def _run_locust(
    scenario: Scenario, seconds: int, api_url: str, plan_path: Path, base: Path
) -> list[dict[str, Any]]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "--users",
        str(scenario.users),
        "--spawn-rate",
        str(scenario.spawn_rate),
        "--run-time",
        f"{seconds}s",
        "--stop-timeout",
        "5",
        "--host",
        api_url,
        "--html",
        str(base.with_suffix(".html")),
        "--json-file",
        str(base),
        "--loglevel",
        "WARNING",
        scenario.user_class,
    ]
    env = {**os.environ, "LOADTEST_PLAN": str(plan_path), "PYTHONPATH": str(ROOT)}
    log = base.with_suffix(".log")
    with log.open("wb") as out:
        subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=seconds + 120,
            check=False,
        )
    stats_path = base.with_suffix(".json")
    if not stats_path.exists():
        raise RuntimeError(f"locust wrote no stats for {scenario.name}:\n{log.read_text()[-3000:]}")
    return list(json.loads(stats_path.read_text()))


def _wait_idle(stack: Any, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        queues = stack.queues()
        if not any(
            q["consumers"] and (q["visible"] or q["in_flight"] or q["delayed"]) for q in queues.values()
        ):
            return time.monotonic() - started
        time.sleep(0.25)
    return time.monotonic() - started


def _job_latencies(stack: Any, sent_log: Path) -> tuple[list[float], int]:
    sent = {}
    if sent_log.exists():
        for line in sent_log.read_text().splitlines():
            item = json.loads(line)
            sent[item["comment_id"]] = float(item["sent_at"])
    received = {
        m["recipient"].get("comment_id"): float(m["received_at"])
        for m in stack.sandbox_messages(kind="private_reply")
        if m["recipient"].get("comment_id") in sent
    }
    return [(received[c] - sent[c]) * 1000 for c in received], len(sent)


def _query_figures(query_log: Path, start: float, end: float) -> dict[str, Any]:
    samples = []
    if query_log.exists():
        for line in query_log.read_text().splitlines():
            at, ms = line.split()
            if start <= float(at) <= end:
                samples.append(float(ms))
    return _figures(samples)


def _figures(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "n": len(samples),
        "p50_ms": round(percentile(samples, 50), 2),
        "p95_ms": round(percentile(samples, 95), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "max_ms": round(max(samples), 2),
    }


# The run ----------------------------------------------------------------------------------------


def _seed(stack: Any, database_url: str, dm_comments: int) -> dict[str, Any]:
    seeder = Seeder(stack.api_url)
    progress(f"seeding {DASHBOARD_TENANTS} dashboard workspaces (Pro, one account each)")
    dashboards = [seeder.workspace(f"dash{i}", "pro", 1) for i in range(DASHBOARD_TENANTS)]
    _bulk_logs(database_url, dashboards, LOG_ROWS_PER_TENANT)
    progress(f"seeding {SUBSCRIPTION_TENANTS} subscription workspaces, {DM_TENANTS} DM workspaces (Business)")
    owners = [seeder.workspace(f"subs{i}", None, 0) for i in range(SUBSCRIPTION_TENANTS)]
    dm = [seeder.workspace(f"dm{i}", "business", DM_ACCOUNTS_PER_TENANT) for i in range(DM_TENANTS)]
    dm_accounts = [a for w in dm for a in w["accounts"]]
    budget = budget_for(dm_comments)
    _set_budgets(database_url, [a["id"] for a in dm_accounts], budget)
    return {
        "app_secret": stack.app_secret,
        "dashboard_users": [{"email": w["email"], "password": w["password"]} for w in dashboards],
        "subscription_owners": [{"email": w["email"], "password": w["password"]} for w in owners],
        "webhook_accounts": [w["accounts"][0]["ig_user_id"] for w in dashboards],
        "dm_accounts": [a["ig_user_id"] for a in dm_accounts],
        "dm_account_ids": [a["id"] for a in dm_accounts],
        "dm_rate_per_account": DM_RATE_PER_ACCOUNT,
        "dm_comments_per_account": dm_comments,
        "dm_hourly_budget": budget,
    }


def _scenario(
    stack: Any,
    scenario: Scenario,
    seconds: int,
    plan: dict[str, Any],
    workdir: Path,
    base: Path,
    database_url: str,
) -> dict[str, Any]:
    plan_path = workdir / f"plan-{scenario.name}.json"
    sent_log = workdir / f"sent-{scenario.name}.jsonl"
    plan_path.write_text(json.dumps({**plan, "sent_log": str(sent_log)}))
    progress(f"{scenario.name}: {scenario.users} users for {seconds} s")
    start = time.time()
    stats = _run_locust(scenario, seconds, stack.api_url, plan_path, base)
    drained = _wait_idle(stack, DRAIN_TIMEOUT_S)
    end = time.time()
    figures: dict[str, Any] = {
        "seconds": seconds,
        "users": scenario.users,
        "drain_s": round(drained, 2),
        "api": api_figures(stats),
        "query": _query_figures(workdir / "queries.log", start, end),
        "report": base.with_suffix(".html").name,
    }
    if "job" in scenario.judged_on:
        latencies, sent = _job_latencies(stack, sent_log)
        figures["job"] = {
            **_figures(latencies),
            "comments": sent,
            "dms": len(latencies),
            "missing": sent - len(latencies),
        }
        figures["sends"] = _send_outcomes(database_url, plan["dm_account_ids"])
        figures["hourly_budget"] = plan["dm_hourly_budget"]
    return figures


def run(total_seconds: float, only: list[str]) -> int:
    from bench.support import mariadb_database
    from tests.e2e.conftest import launch
    from tests.private_redis import private_redis_server

    chosen = [s for s in SCENARIOS if not only or s.name in only]
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    dm_seconds = scenario_seconds(total_seconds, BY_NAME["dm_sending"])
    dm_comments = int(DM_RATE_PER_ACCOUNT * dm_seconds)
    results: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="rf-loadtest-") as tmp,
        mariadb_database("rf_loadtest") as database_url,
        private_redis_server() as redis_url,
    ):
        workdir = Path(tmp)
        progress("starting the local stack on MariaDB + Redis")
        stack = launch(
            workdir,
            module="bench.loadtest.timed_stack",
            extra_args=["--visibility-scale", "1"],
            database_url=database_url,
            env={
                "REDIS_URL": redis_url,
                "PER_SECOND_SEND_CAP": "100",
                "LOADTEST_QUERY_LOG": str(workdir / "queries.log"),
                "LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(ROOT),
            },
        )
        try:
            plan = _seed(stack, database_url, dm_comments)
            _wait_idle(stack, DRAIN_TIMEOUT_S)
            for scenario in chosen:
                base = RESULTS_DIR / f"loadtest-{stamp}-{scenario.name}"
                seconds = scenario_seconds(total_seconds, scenario)
                results[scenario.name] = _scenario(
                    stack, scenario, seconds, plan, workdir, base, database_url
                )
        finally:
            stack.stop()
    checks = [c for c in verdict(results) if c.scenario in results]
    summary = {
        "stamp": stamp,
        "machine": machine(),
        "note": MACHINE_NOTE,
        "backing": "local stack (python -m local) on MariaDB (fresh database) and its own redis-server;"
        " sandbox 0 ms",
        "scenarios": {s.name: {"description": s.description, **results[s.name]} for s in chosen},
        "verdict": [
            {
                "scenario": c.scenario,
                "metric": c.metric,
                "p95_ms": c.p95_ms,
                "target_ms": c.target_ms,
                "n": c.samples,
                "passed": c.passed,
            }
            for c in checks
        ],
    }
    (RESULTS_DIR / f"loadtest-{stamp}.json").write_text(json.dumps(summary, indent=1))
    (RESULTS_DIR / f"loadtest-{stamp}.html").write_text(_index_html(summary, checks))
    _print(summary, checks)
    return 0 if checks and all(c.passed for c in checks) else 1


def _print(summary: dict[str, Any], checks: list[Any]) -> None:
    print(f"\nLoad test {summary['stamp']} ({summary['backing']})")
    for name, figures in summary["scenarios"].items():
        api, query = figures["api"], figures["query"]
        line = (
            f"  {name:<20} {figures['users']:>3} users {figures['seconds']:>4}s  api n={api['n']} "
            f"fail={api['failures']} p50={api['p50_ms']} p95={api['p95_ms']} ms  query n={query['n']} "
            f"p95={query['p95_ms']} ms  drain {figures['drain_s']} s"
        )
        login = api["requests"].get("POST /v1/auth/login")
        if login:
            line += f"  (logins n={login['n']} p95={login['p95_ms']} ms, not judged)"
        if "job" in figures:
            job = figures["job"]
            line += (
                f"  job n={job['n']} p50={job['p50_ms']} p95={job['p95_ms']} ms"
                f" missing={job['missing']} sends={figures['sends']}"
            )
        print(line)
    print("\nVerdict (API p95 < 200 ms, job p95 < 5 s, query p95 < 100 ms):")
    for check in checks:
        print("  " + check.line())
    print(f"\nReports: {RESULTS_DIR}/loadtest-{summary['stamp']}.html (and .json)")


def _index_html(summary: dict[str, Any], checks: list[Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(c.scenario)}</td><td>{c.metric}</td><td>{c.p95_ms}</td>"
        f"<td>{c.target_ms:g}</td><td>{c.samples}</td><td>{'PASS' if c.passed else 'FAIL'}</td></tr>"
        for c in checks
    )
    links = "".join(
        f"<li><a href='{html.escape(f['report'])}'>{html.escape(name)}</a>: "
        f"{html.escape(BY_NAME[name].description)}</li>"
        for name, f in summary["scenarios"].items()
    )
    return (
        f"<!doctype html><meta charset='utf-8'><title>Replyflow load test {summary['stamp']}</title>"
        f"<h1>Load test {summary['stamp']}</h1>"
        f"<p>{html.escape(summary['backing'])}. {html.escape(summary['note'])}</p>"
        "<table border=1 cellpadding=4><tr><th>scenario</th><th>metric</th><th>p95 ms</th><th>target ms</th>"
        f"<th>n</th><th>verdict</th></tr>{rows}</table><h2>Locust reports</h2><ul>{links}</ul>"
        f"<pre>{html.escape(json.dumps(summary['scenarios'], indent=1))}</pre>"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("LOADTEST_SECONDS", "120")),
        help="load time of the four scenarios together (seeding and drains come on top)",
    )
    parser.add_argument("--only", nargs="*", default=[], choices=[s.name for s in SCENARIOS])
    args = parser.parse_args()
    sys.exit(run(args.seconds, args.only))


if __name__ == "__main__":
    main()
