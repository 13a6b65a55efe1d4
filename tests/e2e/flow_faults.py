"""Follow-gate conversations through the local stack under faults (item 8 of the flows issue), shared by
``tests/e2e/test_flows_faults_e2e.py`` (small, the test tier) and ``bench/flows_faults.py`` (1,000).

The stack runs on a fresh MariaDB database and a redis-server of its own (free ports), the demo
account behind the follow gate (``POST /v1/flows/follow-gate``). ``conversations`` people, from
``THREADS`` threads at once; every webhook is posted again with probability ``duplicate_rate`` (Meta's
redeliveries). Half the people follow the account from the start (comment -> private reply with the
button -> tap -> the link); the other half do not (tap -> "follow us first" -> they follow -> "I
followed" -> the link). Faults:

- a **Redis restart**: once ``REDIS_RESTART_AT`` of the conversations have finished, the redis-server
  is stopped and started again on the same port ``REDIS_DOWN_S`` later (empty: nothing persisted);
- a **sandbox token expiry** for the account, mid-conversation: the last ``expiry_share`` of the people
  get their private reply, then the account's token expires (``POST /_sandbox/faults``
  ``{"expire_tokens": [account]}``), then they tap. Their next step cannot be sent: it must end with
  the reason logged (the row parked ``needs_reauth``, the account flagged, or the run ended with a
  reason), never silently. It comes last because the stack has no reconnect without the OAuth dance.

:func:`check` returns what is wrong (an empty list when nothing is): a normal conversation whose run
is not ``completed`` or whose link never came, any step twice at the sandbox (per recipient and
text), a dedupe key twice in ``outbound_messages``, a sent row the sandbox has no DM for, an expired
person with no logged reason.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import RunningStack, free_port, launch

THREADS = 8
REDIS_RESTART_AT = 0.3
REDIS_DOWN_S = 1.5
KEYWORD = "GATE"
LINK = "https://x.example/faults"
CONVERSATION_TIMEOUT_S = 120.0
STACK_ENV = {
    "DEFAULT_HOURLY_SEND_BUDGET": "750",
    "PER_SECOND_SEND_CAP": "100",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


# ------------------------------------------------------------------------------- the redis-server


class RestartableRedis:
    """A redis-server on a fixed free port that can be stopped and started again on that port."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
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

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


# ------------------------------------------------------------------------------ the sandbox's view


class Inbox:
    """One reader of the sandbox's sent messages for every thread (one GET per tick, not per thread)."""

    def __init__(self, stack: RunningStack, account: str) -> None:
        self.stack, self.account = stack, account
        self.messages: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.stopped = threading.Event()
        self.client = httpx.Client(timeout=30)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                response = self.client.get(
                    f"{self.stack.sandbox_url}/_sandbox/messages", params={"account_id": self.account}
                )
                messages = list(response.json()["messages"])
            except (httpx.HTTPError, ValueError, KeyError):
                messages = self.messages
            with self.cond:
                self.messages = messages
                self.cond.notify_all()
            time.sleep(0.1)

    def wait(self, matches: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(matches(m) for m in self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
        return True

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.client.close()


# ---------------------------------------------------------------------------------------- the run


@dataclass
class Person:
    igsid: str
    comment_id: str
    follows_first: bool
    expired: bool = False
    webhooks: int = 0
    duplicates: int = 0
    done: bool = False
    problem: str | None = None


@dataclass
class Outcome:
    people: list[Person]
    messages: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    logs: list[dict[str, Any]]
    seconds: float
    tap_to_link_ms: list[float] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


class Scenario:
    def __init__(self, stack: RunningStack, account: str, *, duplicate_rate: float, seed: int = 13) -> None:
        self.stack, self.account, self.duplicate_rate = stack, account, duplicate_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.inbox = Inbox(stack, account)
        self.latencies: list[float] = []

    def _post(self, person: Person, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        with self.lock:
            duplicate = self.rng.random() < self.duplicate_rate
        with httpx.Client(timeout=30) as client:
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": self.stack.sign(raw)}
            url = f"{self.stack.api_url}/webhooks/instagram"
            client.post(url, content=raw, headers=headers).raise_for_status()
            person.webhooks += 1
            if duplicate:
                client.post(url, content=raw, headers=headers).raise_for_status()
                person.duplicates += 1

    def _sandbox(self, path: str, payload: dict[str, Any]) -> None:
        with httpx.Client(timeout=30) as client:
            client.post(f"{self.stack.sandbox_url}{path}", json=payload).raise_for_status()

    def comment(self, person: Person) -> None:
        from local.cli import comment_body

        body = comment_body(
            text=KEYWORD, account=self.account, comment_id=person.comment_id, from_id=person.igsid
        )
        self._register(body)
        self._post(person, body)
        if not self.inbox.wait(
            lambda m: m["recipient"].get("comment_id") == person.comment_id, CONVERSATION_TIMEOUT_S
        ):
            person.problem = "no private reply"

    def _register(self, body: dict[str, Any]) -> None:
        value = body["entry"][0]["changes"][0]["value"]
        self._sandbox(
            "/_sandbox/comments",
            {
                "id": value["id"],
                "account_id": self.account,
                "from_id": value["from"]["id"],
                "username": value["from"].get("username"),
                "text": value.get("text"),
                "media_id": value.get("media", {}).get("id"),
            },
        )

    def tap(self, person: Person, payload: str, *, follows: bool) -> None:
        from local.cli import postback_body

        self._sandbox("/_sandbox/inbound", {"account_id": self.account, "sender_id": person.igsid})
        if follows:
            self._sandbox(
                f"/_sandbox/users/{person.igsid}/follows", {"account_id": self.account, "follows": True}
            )
        self._post(person, postback_body(payload=payload, account=self.account, from_id=person.igsid))

    def _to(self, person: Person, needle: str) -> Callable[[dict[str, Any]], bool]:
        return lambda m: m["recipient"].get("id") == person.igsid and needle in json.dumps(m["message"])

    def converse(self, person: Person) -> None:
        from replyflow.domain.flows import FOLLOW_GATE_FOLLOWED, FOLLOW_GATE_TAP

        self.comment(person)
        if person.problem:
            return
        started = time.time()
        self.tap(person, FOLLOW_GATE_TAP, follows=person.follows_first)
        if not person.follows_first:
            if not self.inbox.wait(self._to(person, "Follow us first"), CONVERSATION_TIMEOUT_S):
                person.problem = "no follow-us-first"
                return
            started = time.time()
            self.tap(person, FOLLOW_GATE_FOLLOWED, follows=True)
        if not self.inbox.wait(self._to(person, LINK), CONVERSATION_TIMEOUT_S):
            person.problem = "no link"
            return
        link = next(m for m in self.inbox.messages if self._to(person, LINK)(m))
        with self.lock:
            self.latencies.append((float(link["received_at"]) - started) * 1000)
        person.done = True


def _people(conversations: int, expiry_share: float) -> list[Person]:
    expired_from = (
        conversations - max(1, round(conversations * expiry_share)) if expiry_share else conversations
    )
    return [
        Person(
            igsid=f"78{index:013d}",
            comment_id=f"179{7_000_000_000_000 + index:014d}",
            follows_first=index % 2 == 0,
            expired=index >= expired_from,
        )
        for index in range(conversations)
    ]


def play(
    stack: RunningStack,
    redis_server: RestartableRedis,
    account: str,
    database_url: str,
    *,
    conversations: int,
    duplicate_rate: float = 0.3,
    expiry_share: float = 0.05,
    restart_redis: bool = True,
) -> Outcome:
    """Run the conversations with the faults; returns what the sandbox and the database hold after."""
    started = time.monotonic()
    people = _people(conversations, expiry_share)
    normal = [p for p in people if not p.expired]
    expiring = [p for p in people if p.expired]
    scenario = Scenario(stack, account, duplicate_rate=duplicate_rate)
    events: list[str] = []
    finished = threading.Semaphore(0)

    def converse(person: Person) -> None:
        try:
            scenario.converse(person)
        finally:
            finished.release()

    def restarter() -> None:
        for _ in range(max(1, int(len(normal) * REDIS_RESTART_AT))):
            finished.acquire()
        events.append(f"redis stopped at {time.monotonic() - started:.1f} s")
        redis_server.stop()
        time.sleep(REDIS_DOWN_S)
        redis_server.start()
        events.append(f"redis started at {time.monotonic() - started:.1f} s")

    restart = threading.Thread(target=restarter, daemon=True)
    if restart_redis:
        restart.start()
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(converse, normal))
        restart.join(CONVERSATION_TIMEOUT_S) if restart_redis else None
        if expiring:
            with ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(scenario.comment, expiring))
            _expire(stack, account)
            events.append(f"token expired at {time.monotonic() - started:.1f} s")
            from replyflow.domain.flows import FOLLOW_GATE_TAP

            with ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(lambda p: scenario.tap(p, FOLLOW_GATE_TAP, follows=True), expiring))
        stack.wait_idle(timeout=CONVERSATION_TIMEOUT_S)
    finally:
        scenario.inbox.close()
    seconds = time.monotonic() - started
    rows, runs, logs = _read_database(database_url)
    outcome = Outcome(people, stack.sandbox_messages(account_id=account), rows, runs, logs, seconds)
    outcome.tap_to_link_ms = scenario.latencies
    outcome.events = events
    return outcome


def _expire(stack: RunningStack, account: str) -> None:
    response = stack.client.post(f"{stack.sandbox_url}/_sandbox/faults", json={"expire_tokens": [account]})
    response.raise_for_status()


def _read_database(
    database_url: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.text(
                        "SELECT tenant_id, dedupe_key, kind, recipient_id, comment_id, status, error_code"
                        " FROM outbound_messages"
                    )
                )
            ]
            runs = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.text("SELECT contact_igsid, status, step_id, end_reason FROM flow_runs")
                )
            ]
            logs = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.text("SELECT action, reason, detail, event_key FROM automation_logs")
                )
            ]
    finally:
        engine.dispose()
    return rows, runs, logs


# ------------------------------------------------------------------------------------- the verdict


def check(outcome: Outcome) -> list[str]:
    """Everything that went wrong; empty when every conversation ended as expected."""
    per_person, problems = _sandbox_problems(outcome)
    keys = Counter((r["tenant_id"], r["dedupe_key"]) for r in outcome.rows)
    problems += [f"dedupe key {key} has {n} rows" for (_, key), n in keys.items() if n > 1]
    sent_rows = sum(1 for r in outcome.rows if r["status"] == "sent")
    if sent_rows != len(outcome.messages):
        problems.append(f"{sent_rows} sent rows but {len(outcome.messages)} DMs at the sandbox")
    runs = {r["contact_igsid"]: r for r in outcome.runs}
    for person in outcome.people:
        run = runs.get(person.igsid)
        if person.expired:
            problems += _expired_problems(person, run, outcome)
            if per_person[person.igsid] != 1:
                problems.append(f"{person.igsid} (token expired) got {per_person[person.igsid]} messages")
        else:
            problems += _normal_problems(person, run, per_person[person.igsid])
    return problems


def _sandbox_problems(outcome: Outcome) -> tuple[Counter[str], list[str]]:
    """DMs per person at the sandbox, and every (person, message) that arrived more than once."""
    by_comment = {p.comment_id: p.igsid for p in outcome.people}
    sent: Counter[tuple[str, str]] = Counter()
    per_person: Counter[str] = Counter()
    for message in outcome.messages:
        recipient = message["recipient"]
        who = recipient.get("id") or by_comment.get(recipient.get("comment_id", ""), "?")
        sent[(who, json.dumps(message["message"], sort_keys=True))] += 1
        per_person[who] += 1
    return per_person, [f"{who} got the same step {n} times" for (who, _), n in sent.items() if n > 1]


def _normal_problems(person: Person, run: dict[str, Any] | None, messages: int) -> list[str]:
    problems: list[str] = []
    expected = 2 if person.follows_first else 3
    if person.problem or not person.done:
        problems.append(f"{person.igsid}: {person.problem or 'unfinished'}")
    if messages != expected:
        problems.append(f"{person.igsid} got {messages} messages, expected {expected}")
    if run is None or run["status"] != "completed":
        problems.append(f"{person.igsid}: run {run}")
    return problems


def _expired_problems(person: Person, run: dict[str, Any] | None, outcome: Outcome) -> list[str]:
    """The step after the expiry is not at the sandbox and its reason is on record."""
    parked = [
        r
        for r in outcome.rows
        if r["recipient_id"] == person.igsid
        and r["status"] in {"parked", "skipped", "failed"}
        and r["error_code"]
    ]
    ended = run is not None and run["end_reason"]
    if parked or ended:
        return []
    mine = [r for r in outcome.rows if r["recipient_id"] == person.igsid]
    return [f"{person.igsid} (token expired): no logged reason; run {run}, rows {mine}"]


def _reason(person: Person, outcome: Outcome) -> str:
    """What is on record for an expired person's step: the parked row's code, else the run's end."""
    for row in outcome.rows:
        if row["recipient_id"] == person.igsid and row["status"] != "sent" and row["error_code"]:
            return f"{row['status']} {row['error_code']}"
    run = next((r for r in outcome.runs if r["contact_igsid"] == person.igsid), None)
    return f"run {run['status']} {run['end_reason']}" if run else "nothing"


def summary(outcome: Outcome) -> dict[str, Any]:
    people = outcome.people
    expired = [p for p in people if p.expired]
    return {
        "conversations": len(people),
        "webhooks": sum(p.webhooks for p in people),
        "duplicates": sum(p.duplicates for p in people),
        "completed": sum(1 for p in people if p.done),
        "token_expired": len(expired),
        "expired_reasons": dict(Counter(_reason(p, outcome) for p in expired)),
        "dms": len(outcome.messages),
        "seconds": round(outcome.seconds, 1),
        "events": outcome.events,
    }


# ------------------------------------------------------------------------------------ the stack


@contextmanager
def faults_stack(
    database_url: str, *, workdir: Path | None = None
) -> Iterator[tuple[RunningStack, RestartableRedis, str]]:
    """The stack on ``database_url`` and a restartable redis-server; yields (stack, redis, account)."""
    from replyflow.services.demo_seed import DEMO_EMAIL, DEMO_IG_USER_ID, DEMO_PASSWORD

    with tempfile.TemporaryDirectory(prefix="rf-flow-faults-") as tmp:
        root = workdir or Path(tmp)
        redis_server = RestartableRedis(root)
        redis_server.start()
        stack = launch(
            root / "stack", database_url=database_url, env={**STACK_ENV, "REDIS_URL": redis_server.url}
        )
        try:
            _raise_budget(database_url, DEMO_IG_USER_ID)
            login = stack.request(
                "POST", "/v1/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
            )
            login.raise_for_status()
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            accounts = stack.request("GET", "/v1/accounts", headers=auth).json()
            items = accounts["items"] if isinstance(accounts, dict) else accounts
            account_id = next(a["id"] for a in items if a["ig_user_id"] == DEMO_IG_USER_ID)
            gate = stack.request(
                "POST",
                "/v1/flows/follow-gate",
                headers=auth,
                json={"account_id": account_id, "keyword": KEYWORD, "message": "The guide", "link": LINK},
            )
            gate.raise_for_status()
            stack.wait_idle()
            stack.clear_sandbox_messages()
            yield stack, redis_server, DEMO_IG_USER_ID
        finally:
            stack.stop()
            redis_server.stop()


def _raise_budget(database_url: str, ig_user_id: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE instagram_accounts SET hourly_send_budget = 5000 WHERE ig_user_id = :ig"),
            {"ig": ig_user_id},
        )
    engine.dispose()
