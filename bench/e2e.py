"""End to end over HTTP: the local stack (``python -m local run --no-scheduler --extra-accounts 9`` as a
subprocess, started by ``tests/e2e/conftest.py:launch``) with its SQLite file, its broker (4 worker
threads per queue, visibility timeouts as in template.yaml) and its Instagram sandbox, twice, side by
side in one run:

- **before**: ``--in-process-workers``, the processor and sender on threads of the stack's process,
  Redis an in-process fakeredis (the model until the worker processes);
- **after**: the default, the processor and the sender in a process each (``local.worker_process``),
  Redis a ``redis-server`` the stack started for its processes.

The stack runs with ``PER_SECOND_SEND_CAP=100`` (Instagram's documented 100 calls/s) on 10 accounts:
the demo's (its ``hourly_send_budget`` raised to 750, the maximum, in the stack's SQLite file right
after launch) and 9 more (``local.extra_accounts``: 750 each). Comments go to the accounts round-robin
and each account's total stays under 750, so the hourly budget never defers a send. One comment is
sent and answered first to warm the stack (not counted).
Every comment is a signed ``comments`` webhook with a comment id and a commenter of its own, posted to
``/webhooks/instagram``; the comment is not registered with the sandbox first (it treats an unknown
comment as new), so the bench adds no load to the stack beyond the webhook POSTs.

Measured:

- latency: ``received_at`` of the private reply at the sandbox (its clock is ``time.time()`` on this
  machine) minus the ``time.time()`` just before the webhook POST left, for comments posted
  sequentially at a fixed pace (20/s by default: well under capacity, so this is latency, not queueing);
  also the webhook POST's own round trip.
- burst: comments posted as fast as 4 threads can (one HTTP client each): events/s accepted by the
  webhook (count / time from the first POST sent to the last 200 received), and DMs/s end to end (count
  / time from the first POST sent to the last DM's ``received_at``); its latency percentiles include
  the queueing of the burst;
- CPU per DM over the burst: user + system CPU seconds of the stack's process and its worker
  processes (psutil, from just before the first POST to the last DM), divided by the DMs; Redis and
  the database are excluded (SQLite runs inside the processes, so its work is in), and the stack's
  process also runs the broker, the sandbox and the Stripe fake, so this is an upper bound of
  webhook + processor + sender. ``cpu_by_process`` splits it.

Deferrals and failures are counted from the stack's database after the run (``outbound_messages``
final statuses, ``reply_logs`` entries with the retry delay each deferral named) and from the DMs the
sandbox received. With a cap of 100/s the sandbox's usage header can reach 90 % (90 calls in its rolling
second), and the sender then pauses the account for 60 s: the burst's DMs/s then includes that pause
(``deferral_retry_in_s`` shows it), and what has not arrived within 150 s is reported as missing.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.stats import summarize
from bench.support import comment_webhook, ms_since, new_comment_id, progress, rate

SEQUENTIAL_RATE = 20.0
THREADS = 4
HOURLY_BUDGET = 750
ACCOUNTS = 10
MODES = {"before: in-process workers": ["--in-process-workers"], "after: worker processes": []}
# Long enough for one 60 s pause of the account (the sender pauses it when the sandbox reports >= 90 %
# usage) and the deferred sends after it; what has not arrived by then is reported as missing.
WAIT_TIMEOUT_S = 150.0
RETRY_IN = re.compile(r"retry in (\d+)s")


def _post(stack: Any, client: Any, body: bytes) -> tuple[float, float, int]:
    """(epoch seconds when the POST left, round trip ms, status)."""
    sent_at = time.time()
    t0 = time.perf_counter()
    response = client.post(
        f"{stack.api_url}/webhooks/instagram",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": stack.sign(body)},
    )
    return sent_at, ms_since(t0), response.status_code


def _wait_for_dms(stack: Any, comment_ids: set[str], timeout_s: float = WAIT_TIMEOUT_S) -> dict[str, float]:
    """Until the queues are idle (nothing visible, in flight or delayed) and the sandbox holds a DM for
    every comment, or the timeout; returns comment id -> ``received_at`` of those that arrived."""
    deadline = time.monotonic() + timeout_s

    def received() -> dict[str, float]:
        return {
            m["recipient"].get("comment_id"): float(m["received_at"])
            for m in stack.sandbox_messages(kind="private_reply")
            if m["recipient"].get("comment_id") in comment_ids
        }

    while time.monotonic() < deadline:
        queues = stack.queues()
        busy = any(
            q["consumers"] and (q["visible"] or q["in_flight"] or q["delayed"]) for q in queues.values()
        )
        if not busy:
            arrived = received()
            if comment_ids <= arrived.keys():
                return arrived
        time.sleep(0.25)
    return received()


def _outcomes(db_path: Path) -> dict[str, Any]:
    """Final ``outbound_messages`` statuses; every ``reply_logs`` entry by status:reason (a deferral that
    later went out is ``sent`` in the first and still counted in the second); the retry delays the
    deferrals named, in seconds -> count."""
    with sqlite3.connect(db_path) as conn:
        final = conn.execute("SELECT status, COUNT(*) FROM outbound_messages GROUP BY status").fetchall()
        logged = conn.execute(
            "SELECT status || COALESCE(':' || error_code, ''), COUNT(*) FROM reply_logs GROUP BY 1"
        ).fetchall()
        details = conn.execute("SELECT detail FROM reply_logs WHERE status = 'deferred'").fetchall()
    delays = Counter(int(m.group(1)) for (d,) in details if (m := RETRY_IN.search(d or "")))
    return {
        "ledger": {str(k): int(n) for k, n in sorted(final)},
        "reply_logs": {str(k): int(n) for k, n in sorted(logged)},
        "deferrals": sum(delays.values()) if delays else sum(1 for _ in details),
        "deferral_retry_in_s": dict(sorted(delays.items())),
    }


def _sequential(stack: Any, accounts: list[str], count: int) -> list[dict[str, Any]]:
    import httpx

    sent: dict[str, float] = {}
    round_trips: list[float] = []
    bad = 0
    interval = 1.0 / SEQUENTIAL_RATE
    with httpx.Client(timeout=30) as client:
        start = time.perf_counter()
        for n in range(count):
            pause = start + n * interval - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            comment_id = new_comment_id()
            account = accounts[n % len(accounts)]
            sent_at, ms, status = _post(stack, client, comment_webhook(account, comment_id=comment_id))
            sent[comment_id] = sent_at
            round_trips.append(ms)
            bad += status != 200
        posting_s = time.perf_counter() - start
    received = _wait_for_dms(stack, set(sent))
    latencies = [(received[cid] - sent[cid]) * 1000 for cid in received]
    return [
        summarize(
            f"comment -> DM latency, sequential {SEQUENTIAL_RATE:g}/s",
            latencies,
            per_second=rate(count, posting_s),
            unit="latency; per_second = posting rate",
            comments=count,
            dms=len(received),
            missing=count - len(received),
        ),
        summarize(
            "webhook POST round trip, sequential",
            round_trips,
            per_second=rate(count, posting_s),
            unit="round trip; per_second = posting rate",
            non_200=bad,
        ),
    ]


def _cpu_seconds(pid: int) -> dict[str, float]:
    """User + system CPU seconds of the stack's process and each worker process (not Redis)."""
    import psutil

    stack = psutil.Process(pid)
    found: dict[str, float] = {}
    for process in [stack, *stack.children(recursive=True)]:
        try:
            if "redis" in process.name():
                continue
            times = process.cpu_times()
            command = " ".join(process.cmdline())
        except psutil.NoSuchProcess:
            continue
        name = "stack" if process.pid == pid else "worker" if "spawn_main" in command else "other"
        key = name if name == "stack" else f"{name} {process.pid}"
        found[key] = times.user + times.system
    return found


def _burst(stack: Any, accounts: list[str], count: int) -> list[dict[str, Any]]:
    import httpx

    ids = [new_comment_id() for _ in range(count)]
    bodies = [
        (cid, comment_webhook(accounts[n % len(accounts)], comment_id=cid)) for n, cid in enumerate(ids)
    ]
    cpu_before = _cpu_seconds(stack.process.pid)
    shares = [bodies[i::THREADS] for i in range(THREADS)]
    sent: dict[str, float] = {}
    round_trips: list[float] = []
    answered: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    ready = threading.Barrier(THREADS)

    def post_all(share: list[tuple[str, bytes]]) -> None:
        with httpx.Client(timeout=60) as client:
            ready.wait()
            for cid, body in share:
                sent_at, ms, status = _post(stack, client, body)
                with lock:
                    sent[cid] = sent_at
                    round_trips.append(ms)
                    answered.append(time.time())
                    statuses[status] += 1

    threads = [threading.Thread(target=post_all, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first = min(sent.values())
    accepted_s = max(answered) - first
    received = _wait_for_dms(stack, set(sent))
    cpu = {k: v - cpu_before.get(k, 0.0) for k, v in _cpu_seconds(stack.process.pid).items()}
    latencies = [(received[cid] - sent[cid]) * 1000 for cid in received]
    dms_s = (max(received.values()) - first) if received else float("nan")
    cpu_ms_per_dm = round(sum(cpu.values()) * 1000 / len(received), 2) if received else float("nan")
    return [
        summarize(
            f"burst: webhook accepted ({THREADS} threads)",
            round_trips,
            per_second=rate(statuses[200], accepted_s),
            unit="POST round trip; per_second = events accepted/s",
            comments=count,
            non_200=count - statuses[200],
            seconds=round(accepted_s, 2),
        ),
        summarize(
            "burst: comment -> DM end to end",
            latencies,
            per_second=rate(len(received), dms_s),
            unit="latency incl. queueing; per_second = DMs/s, first POST -> last DM",
            dms=len(received),
            missing=count - len(received),
            seconds=round(dms_s, 2),
            cpu_ms_per_dm=cpu_ms_per_dm,
            cpu_by_process={k: round(v, 2) for k, v in sorted(cpu.items())},
        ),
    ]


def _mode(name: str, args: list[str], sequential: int, burst: int) -> list[dict[str, Any]]:
    from replyflow.services.demo_seed import DEMO_IG_USER_ID
    from tests.e2e.conftest import launch

    with tempfile.TemporaryDirectory(prefix="rf-bench-e2e-") as tmp:
        workdir = Path(tmp)
        progress(f"e2e, {name}: starting the local stack (subprocess)")
        stack = launch(
            workdir,
            extra_args=["--visibility-scale", "1", "--extra-accounts", str(ACCOUNTS - 1), *args],
            env={"PER_SECOND_SEND_CAP": "100"},
        )
        try:
            db_path = workdir / "e2e.db"
            with sqlite3.connect(db_path) as conn:
                conn.execute(
                    "UPDATE instagram_accounts SET hourly_send_budget = ? WHERE ig_user_id = ?",
                    (HOURLY_BUDGET, DEMO_IG_USER_ID),
                )
                accounts = [row[0] for row in conn.execute("SELECT ig_user_id FROM instagram_accounts")]
            progress(f"e2e, {name}: warm-up comment")
            warm = new_comment_id()
            stack.post_webhook(json.loads(comment_webhook(DEMO_IG_USER_ID, comment_id=warm)))
            if warm not in _wait_for_dms(stack, {warm}, 60):
                raise RuntimeError(f"the warm-up comment got no DM:\n{stack.output()[-3000:]}")
            progress(f"e2e, {name}: {sequential} comments at {SEQUENTIAL_RATE:g}/s")
            rows = _sequential(stack, accounts, sequential)
            progress(
                f"e2e, {name}: burst of {burst} comments from {THREADS} threads on {len(accounts)} accounts"
            )
            rows += _burst(stack, accounts, burst)
            outcomes = _outcomes(db_path)
        finally:
            stack.stop()
    note = {"workers": name, "accounts": len(accounts), **outcomes}
    return [{**row, "name": f"{name}: {row['name']}", **note} for row in rows]


def run(sequential: int = 100, burst: int = 600) -> list[dict[str, Any]]:
    per_account = 1 + -(-(sequential + burst) // ACCOUNTS)
    if per_account > HOURLY_BUDGET:
        raise ValueError(f"{per_account} DMs per account would pass its hourly budget of {HOURLY_BUDGET}")
    rows: list[dict[str, Any]] = []
    for name, args in MODES.items():
        rows += _mode(name, args, sequential, burst)
    note = {
        "backing": "local stack: SQLite, broker in the stack's process, sandbox 0 ms",
        "per_second_send_cap": 100,
        "hourly_send_budget": HOURLY_BUDGET,
    }
    return [{**row, **note} for row in rows]
