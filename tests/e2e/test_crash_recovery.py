"""A crash of the local stack loses nothing it answered 200 to.

``test_kill_9_mid_burst_loses_nothing``: the stack on a fresh MariaDB database and a private
redis-server (free ports), 300 signed comment webhooks from 4 threads at 60/s, ``kill -9`` mid-burst
once the sandbox has 40 DMs (events, sends and Graph calls are then in flight together), a restart on
the same state directory, database and Redis. Then every comment the
webhook answered 200 to must end as exactly one of

- a DM at the sandbox (exactly one: never two for one comment),
- a logged decision (a settled ledger row - ``unknown`` for a send the dead worker may have made - or
  an automation log with no send),
- a DLQ entry,
- or, for what the crash left half-done, a job still in a queue that will settle it (a send that was in
  Graph at the kill is re-checked when its 120 s lease ends; the test does not wait for that),

and nothing may be stuck: no comment without any trace, no ledger row without a job to settle it,
no ``sent`` row the sandbox has no DM for. The queues' remaining jobs are read from the broker's state
file after a clean stop.

``test_ctrl_c_keeps_the_queued_work``: Ctrl-C right after 40 webhooks (SQLite, the stack's own
redis-server), sent to the stack's whole process group as a terminal sends it; no batch may die in
the stop (the worker processes ignore SIGINT and finish theirs), and after a restart all 40 DMs
arrive. A failure names, for each missing comment, its inbound event, ledger row, logs and the jobs
left for it (docs/architecture.md, "Stopping the stack").

Both print a one-line report (``-s`` shows it); the same scenario on an in-memory broker is how the
numbers in docs/architecture.md were taken.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningStack, free_port, launch

COMMENTS = 300
POST_RATE = 60.0  # webhooks per second, all threads together: a burst of about 5 s
KILL_AT_DMS = 40
KILL_AT_ACCEPTED = 250
THREADS = 4
DRAIN_TIMEOUT_S = 60.0
STACK_ENV = {
    # 300 private replies to one account within the hour: room for all of them, no deferral (the
    # demo account's own budget is raised too, raise_hourly_budget).
    "DEFAULT_HOURLY_SEND_BUDGET": "750",
    "PER_SECOND_SEND_CAP": "50",
    "POWERTOOLS_METRICS_DISABLED": "true",
}
TERMINAL = {"sent", "skipped", "unknown", "failed"}
# How long after the crash the ledger sweeper is run: past every threshold it waits for (the send
# lease, the visibility timeout plus a lease, the longest SQS delay plus those), so it settles what
# no job will (a processor killed between its commit and its publish leaves rows ``queued``).
SWEEP_AFTER = "30 MINUTE"


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test's own on a free port (never the shared one: nothing to flush)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def crash_database() -> Iterator[str]:
    from tests.conftest import fresh_mysql_database

    with fresh_mysql_database("rf_crash") as url:
        yield url


# --------------------------------------------------------------------------------------- helpers


def comment_webhook(comment_id: str, index: int) -> dict[str, Any]:
    from replyflow.domain.webhook_bodies import comment_body
    from replyflow.services.demo_seed import DEMO_IG_USER_ID

    # A commenter of its own per comment: the automation's per-contact cooldown would skip repeats.
    return comment_body(
        text="LINK please",
        account=DEMO_IG_USER_ID,
        comment_id=comment_id,
        from_id=f"7{index + 1:015d}",
        username=f"crash_user_{index}",
    )


def post_burst(stack: RunningStack, comment_ids: list[str], *, kill: bool) -> list[str]:
    """POST the comments from 4 threads at ``POST_RATE``; returns the ids answered 200.

    With ``kill``, a watcher SIGKILLs the stack mid-burst, once the sandbox has ``KILL_AT_DMS`` DMs
    (so events, sends and Graph calls are in flight at once) or ``KILL_AT_ACCEPTED`` webhooks were
    answered, whichever comes first; posting stops at the first refused connection."""
    accepted: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()
    done = threading.Event()

    def post(share: list[tuple[int, str]]) -> None:
        interval = THREADS / POST_RATE
        with httpx.Client(timeout=10) as client:
            for index, comment_id in share:
                began = time.monotonic()
                if killed.is_set():
                    return
                raw = json.dumps(comment_webhook(comment_id, index)).encode()
                headers = {"Content-Type": "application/json", "X-Hub-Signature-256": stack.sign(raw)}
                try:
                    response = client.post(
                        f"{stack.api_url}/webhooks/instagram", content=raw, headers=headers
                    )
                except httpx.HTTPError:
                    if killed.is_set():
                        return
                    raise
                if response.status_code == 200:
                    with lock:
                        accepted.append(comment_id)
                time.sleep(max(0.0, interval - (time.monotonic() - began)))

    def watch() -> None:
        with httpx.Client(timeout=10) as client:
            while not done.is_set():
                dms = len(client.get(f"{stack.sandbox_url}/_sandbox/messages").json()["messages"])
                with lock:
                    if dms >= KILL_AT_DMS or len(accepted) >= KILL_AT_ACCEPTED:
                        stack.process.kill()  # SIGKILL: no handler, no flush, no goodbye
                        killed.set()
                        return
                time.sleep(0.05)

    numbered = list(enumerate(comment_ids))
    threads = [threading.Thread(target=post, args=(numbered[i::THREADS],)) for i in range(THREADS)]
    watcher = threading.Thread(target=watch)
    if kill:
        watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    if kill:
        watcher.join()
        assert killed.is_set(), "the burst ended before the kill"
        stack.process.wait(10)
    return accepted


def wait_drained(stack: RunningStack, timeout: float = DRAIN_TIMEOUT_S) -> None:
    """Until no queue has anything visible or in flight (delayed re-checks may remain)."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        busy = any(q["consumers"] and (q["visible"] or q["in_flight"]) for q in stack.queues().values())
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.0:
            return
        time.sleep(0.1)
    raise AssertionError(f"queues still busy after {timeout} s: {json.dumps(stack.queues(), indent=1)}")


def raise_hourly_budget(database_url: str) -> None:
    """The demo account's own budget (200/h) would defer the burst's last sends by up to 900 s."""
    import sqlalchemy as sa

    from replyflow.services.demo_seed import DEMO_IG_USER_ID

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE instagram_accounts SET hourly_send_budget = 750 WHERE ig_user_id = :ig"),
            {"ig": DEMO_IG_USER_ID},
        )
    engine.dispose()


def queued_jobs(state_dir: Path) -> list[tuple[str, str]]:
    """(queue, body) of every message left in the broker's state file (none for an in-memory broker)."""
    path = state_dir / "broker.sqlite3"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return [(str(q), str(b)) for q, b in db.execute("SELECT queue, body FROM messages ORDER BY seq")]


# ---------------------------------------------------------------------------------------- report


@dataclass
class CrashReport:
    accepted: int = 0
    dm: int = 0
    decided: int = 0
    dead_lettered: int = 0
    pending: int = 0  # a job in a queue will settle it (a re-check after a dead worker's lease)
    unsettled: list[tuple[str, str]] = field(default_factory=list)  # (comment, row status), no job
    lost: list[str] = field(default_factory=list)  # no trace at all
    duplicates: list[str] = field(default_factory=list)  # more than one DM
    sent_without_dm: list[str] = field(default_factory=list)  # ledger "sent", no DM at the sandbox

    def line(self) -> str:
        return (
            f"accepted={self.accepted} dm={self.dm} decided={self.decided} dlq={self.dead_lettered} "
            f"pending={self.pending} unsettled={len(self.unsettled)} "
            f"{dict(Counter(status for _, status in self.unsettled))} lost={len(self.lost)} "
            f"duplicates={len(self.duplicates)} sent_without_dm={len(self.sent_without_dm)}"
        )


def account_for(
    accepted: list[str], database_url: str, dms: Counter[str], jobs: list[tuple[str, str]]
) -> CrashReport:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        rows = {
            str(comment): (int(row_id), str(status))
            for comment, row_id, status in conn.execute(
                sa.text("SELECT comment_id, id, status FROM outbound_messages WHERE kind = 'private_reply'")
            )
        }
        logged = {
            str(key) for (key,) in conn.execute(sa.text("SELECT DISTINCT event_key FROM automation_logs"))
        }
    engine.dispose()
    send_jobs: dict[int, str] = {}
    event_jobs: dict[str, str] = {}
    for queue, body in jobs:
        data = json.loads(body)
        if "outbound_id" in data:
            send_jobs[int(data["outbound_id"])] = queue
        elif isinstance(data.get("event"), dict):
            event_jobs[str(data["event"].get("event_key"))] = queue

    report = CrashReport(accepted=len(accepted))
    for comment in accepted:
        count = dms[comment]
        if count > 1:
            report.duplicates.append(comment)
        row = rows.get(comment)
        job_queue = send_jobs.get(row[0]) if row else event_jobs.get(comment)
        if row is not None and row[1] == "sent" and count == 0:
            report.sent_without_dm.append(comment)
        elif count == 1:
            report.dm += 1
        elif row is not None and row[1] in TERMINAL:
            report.decided += 1
        elif job_queue is not None and job_queue.endswith("-dlq"):
            report.dead_lettered += 1
        elif job_queue is not None:
            report.pending += 1
        elif row is not None:
            report.unsettled.append((comment, row[1]))
        elif comment in logged:
            report.decided += 1
        else:
            report.lost.append(comment)
    return report


def settle_what_the_crash_left(stack: RunningStack, database_url: str) -> None:
    """The ledger sweeper on the restarted stack, as its schedule would run it once the thresholds have
    passed: the rows still waiting are aged by SWEEP_AFTER (the time the sweeper waits), the job runs
    inside the stack (``POST /_local/jobs/ledger-sweep``), and what it republished drains."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"UPDATE outbound_messages SET updated_at = updated_at - INTERVAL {SWEEP_AFTER} "
                "WHERE status IN ('queued', 'deferred', 'sending')"
            )
        )
    engine.dispose()
    swept = stack.request("POST", "/_local/jobs/ledger-sweep", timeout=120)
    assert swept.status_code == 200, swept.text
    print(f"\nledger sweep after the crash: {swept.json()['summary']}")
    wait_drained(stack)


def assert_nothing_stuck(report: CrashReport, crashed_log: str = "") -> None:
    assert report.lost == [], f"accepted comments without any trace: {report.line()}\n{crashed_log[-3000:]}"
    assert report.duplicates == [], f"comments with two DMs: {report.line()}"
    assert report.sent_without_dm == [], f"the sandbox forgot DMs it answered: {report.line()}"
    assert report.unsettled == [], f"ledger rows no job will settle: {report.unsettled} ({report.line()})"


# ------------------------------------------------------------------------------------------ tests


def test_kill_9_mid_burst_loses_nothing(
    tmp_path_factory: pytest.TempPathFactory, crash_database: str, private_redis: str
) -> None:
    started = time.monotonic()
    workdir = tmp_path_factory.mktemp("crash")
    env = {**STACK_ENV, "REDIS_URL": private_redis}
    comment_ids = [f"179{9_000_000_000_000 + index:014d}" for index in range(COMMENTS)]

    stack = launch(workdir, database_url=crash_database, env=env)
    raise_hourly_budget(crash_database)
    accepted = post_burst(stack, comment_ids, kill=True)
    assert stack.process.returncode == -9
    first_log = stack.output()
    assert "the worker process is gone" not in first_log, f"a batch died in the stop:\n{first_log[-4000:]}"
    stack.client.close()
    assert 0 < len(accepted) < COMMENTS

    stack = launch(workdir, database_url=crash_database, env=env)
    try:
        wait_drained(stack)
        settle_what_the_crash_left(stack, crash_database)
        dms = Counter(
            m["recipient"].get("comment_id") for m in stack.sandbox_messages() if m["kind"] == "private_reply"
        )
    finally:
        code = stack.stop()
    assert code == 0, stack.output()[-5000:]
    report = account_for(accepted, crash_database, dms, queued_jobs(workdir / ".local"))
    elapsed = time.monotonic() - started
    print(f"\ncrash report (kill -9 mid-burst, {elapsed:.0f} s): {report.line()}")
    assert_nothing_stuck(report, first_log)


def test_ctrl_c_keeps_the_queued_work(tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("ctrl-c")
    comment_ids = [f"179{8_000_000_000_000 + index:014d}" for index in range(40)]
    stack = launch(workdir, env=STACK_ENV, own_group=True)
    accepted = post_burst(stack, comment_ids, kill=False)
    # Ctrl-C at once, to the whole process group as a terminal sends it (the worker processes and the
    # stack's redis-server get it too): in-flight batches finish, the queued rest waits on disk.
    assert stack.stop(group=True) == 0
    first_log = stack.output()
    assert "the worker process is gone" not in first_log, f"a batch died in the stop:\n{first_log[-4000:]}"

    stack = launch(workdir, env=STACK_ENV)
    try:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        received: set[str] = set()
        while time.monotonic() < deadline and not set(accepted) <= received:
            received = {m["recipient"].get("comment_id") for m in stack.sandbox_messages()}
            time.sleep(0.2)
    finally:
        assert stack.stop() == 0
    missing = sorted(set(accepted) - received)
    delivered = len(received & set(accepted))
    print(f"\nctrl-c report: accepted={len(accepted)} dms={delivered} missing={len(missing)}")
    assert len(accepted) == 40
    logs = f"--- first run ---\n{first_log[-4000:]}\n--- after the restart ---\n{stack.output()[-4000:]}"
    assert missing == [], trace_of(missing, f"sqlite:///{workdir / 'e2e.db'}", workdir / ".local") + logs


def trace_of(comments: list[str], database_url: str, state_dir: Path) -> str:
    """What became of ``comments`` (for a failure message): their inbound event, ledger row and
    decisions, and the broker's jobs for them and in every DLQ."""
    import sqlalchemy as sa

    wanted = set(comments)
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    lines: list[str] = []
    row_ids: set[str] = set()
    with engine.connect() as conn:
        for comment in comments:
            key = {"key": comment}
            events = conn.execute(
                sa.text("SELECT received_at FROM inbound_events WHERE event_key = :key"), key
            ).all()
            rows = conn.execute(
                sa.text(
                    "SELECT id, status, error_code, attempts, updated_at FROM outbound_messages "
                    "WHERE comment_id = :key"
                ),
                key,
            ).all()
            logged = conn.execute(
                sa.text(
                    "SELECT action, reason, detail, created_at FROM automation_logs "
                    "WHERE event_key = :key OR detail LIKE :row OR detail LIKE :bare ORDER BY id"
                ),
                {
                    **key,
                    "row": f"% #{rows[0][0]}:%" if rows else "-",
                    "bare": f"% #{rows[0][0]}" if rows else "-",
                },
            ).all()
            lines.append(f"{comment}: inbound={events} outbound={rows} logs={logged}")
            row_ids.update(str(row[0]) for row in rows)
    engine.dispose()
    for queue, body in queued_jobs(state_dir):
        data = json.loads(body)
        event = data.get("event") if isinstance(data.get("event"), dict) else {}
        mine = str(data.get("outbound_id")) in row_ids or event.get("event_key") in wanted
        if mine or queue.endswith("-dlq"):
            lines.append(f"job in {queue}: {body[:300]}")
    return "\n".join(lines) + "\n"
