"""``python -m bench [--quick] [--only NAME ...]`` (``make bench``): run the suites, print a table per
suite, write ``bench/results/<suite>.json`` and ``bench/results/summary.json``.

Suites, in order (each module's docstring says exactly what it measures):

- ``cold_start``: a fresh interpreter importing a handler and serving a sample event, against one
  importing boto3;
- ``webhook``: the webhook handler in-process (route cache in fakeredis, then in the real Redis);
- ``redis_outage``: the webhook handler with Redis refused or unresponsive, before/after the client's
  failure policy;
- ``e2e``: the local stack over HTTP, comment -> DM latency and a 4-thread burst;
- ``flows``: the local stack over HTTP, flow-step latency of the follow gate (tap -> link DM);
- ``flows_faults``: 1,000 follow-gate conversations at once over 5 accounts on the local stack
  (MariaDB, its own Redis) with 30 % duplicate webhooks, a Redis restart and a token expiry; fails
  unless each ends as expected;
- ``workers``: processor and sender handlers in-process on MariaDB + Redis, sandbox at 0 and 200 ms;
- ``api``: cached and uncached API reads on MariaDB + Redis with a million log rows;
- ``broker``: the local broker alone, in memory and on its SQLite state file;
- ``retention``: retention and the logs page on MariaDB, chunked deletes (before) beside partitioned
  logs (after), on the same generated rows;
- ``shards``: a unit of work on one database beside one routed to the tenant's shard, and a tenant's
  move between two MariaDB shards (rows per second);
- ``billing``: the subscription spike: 200 tenants check out and pay at once on the local stack and
  its Stripe fake, every event delivered twice; one customer and one subscription each;
- ``console``: the console in Chromium over the local stack, logs and stats time to interactive with a
  million log rows, and the first page's gzipped JS.

A suite that fails is reported and the others still run (the exit status is then 1). Every suite
cleans up what it made (MariaDB databases, Redis databases, servers, the stack) on error too. While
a suite runs, stdout goes to /dev/null (Powertools writes a log line or EMF metrics per call; the cost
stays in the measurement) and progress goes to stderr. ``--quick`` shrinks every suite for a smoke run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench import (
    api,
    billing,
    broker,
    cold_start,
    console,
    e2e,
    flows,
    flows_faults,
    redis_outage,
    retention,
    shards,
    webhook,
    workers,
)
from bench.stats import MACHINE_NOTE, RESULTS_DIR, machine, print_table, write_results
from bench.support import quiet_stdout

Suite = Callable[..., list[dict[str, Any]]]

SUITES: dict[str, Suite] = {
    "cold_start": cold_start.run,
    "webhook": webhook.run,
    "redis_outage": redis_outage.run,
    "e2e": e2e.run,
    "flows": flows.run,
    "flows_faults": flows_faults.run,
    "workers": workers.run,
    "api": api.run,
    "broker": broker.run,
    "retention": retention.run,
    "shards": shards.run,
    "billing": billing.run,
    "console": console.run,
}
FULL: dict[str, dict[str, Any]] = {
    "cold_start": {"repeats": 15},
    "webhook": {"calls": 3000},
    "redis_outage": {"calls": 300, "slow_calls": 20},
    "e2e": {"sequential": 100, "burst": 600},
    "flows": {"conversations": 100},
    "flows_faults": {"conversations": 1000},
    "workers": {"events": 1000, "accounts": 50},
    "api": {"log_rows": 1_000_000, "calls": 300, "stats_calls": 5},
    "broker": {"messages": 20_000},
    "retention": {"rows": 2_000_000, "calls": 200, "flat_seconds": 60.0},
    "shards": {"rows": 200_000, "calls": 500},
    "billing": {"tenants": 200},
    "console": {"log_rows": 1_000_000, "samples": 20},
}
QUICK: dict[str, dict[str, Any]] = {
    "cold_start": {"repeats": 3},
    "webhook": {"calls": 300},
    "redis_outage": {"calls": 50, "slow_calls": 5},
    "e2e": {"sequential": 20, "burst": 100},
    "flows": {"conversations": 20},
    "flows_faults": {"conversations": 60},
    "workers": {"events": 100, "accounts": 10},
    "api": {"log_rows": 100_000, "calls": 50, "stats_calls": 2},
    "broker": {"messages": 2_000},
    "retention": {"rows": 200_000, "calls": 50, "flat_seconds": 10.0},
    "shards": {"rows": 20_000, "calls": 100},
    "billing": {"tenants": 20},
    "console": {"log_rows": 50_000, "samples": 5},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of about a minute")
    parser.add_argument("--only", nargs="+", choices=list(SUITES), metavar="NAME", help=f"of {list(SUITES)}")
    args = parser.parse_args(argv)
    names = args.only or list(SUITES)
    sizes = QUICK if args.quick else FULL
    mode = "quick" if args.quick else "full"

    report = sys.stdout
    print(f"Replyflow bench ({mode}): {', '.join(names)}", file=report)
    print(f"Machine: {MACHINE_NOTE}; load average {os.getloadavg()[0]:.2f}", file=report, flush=True)
    suites: dict[str, Any] = {}
    all_rows: list[dict[str, Any]] = []
    failed: list[str] = []
    started = time.perf_counter()
    for name in names:
        print(f"\n== {name} {sizes[name]}", file=report, flush=True)
        print(f"== {name}", file=sys.stderr, flush=True)
        suite_start = time.perf_counter()
        try:
            with quiet_stdout():
                rows = SUITES[name](**sizes[name])
        except Exception:
            failed.append(name)
            traceback.print_exc()
            error = traceback.format_exc(limit=3)
            print(f"  FAILED: {error.strip().splitlines()[-1]}", file=report, flush=True)
            suites[name] = {"sizes": sizes[name], "error": error}
            continue
        seconds = round(time.perf_counter() - suite_start, 1)
        print_table(rows, report)
        print(f"  ({seconds} s)", file=report, flush=True)
        write_results(name, rows, mode=mode, sizes=sizes[name], seconds=seconds)
        suites[name] = {"sizes": sizes[name], "seconds": seconds}
        all_rows += [{"suite": name, **row} for row in rows]
    total = round(time.perf_counter() - started, 1)
    write_results(
        "summary", all_rows, mode=mode, seconds=total, suites=suites, failed=failed, machine_after=machine()
    )
    print(
        f"\n{len(names) - len(failed)}/{len(names)} suites in {total} s; JSON in {RESULTS_DIR}"
        f"; load average now {os.getloadavg()[0]:.2f}",
        file=report,
    )
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
