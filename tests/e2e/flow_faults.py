"""Follow-gate conversations through the local stack under faults (item 8 of the flows issue), shared by
``tests/e2e/test_flows_faults_e2e.py`` (the test tier, sized to about 3 minutes) and
``bench/flows_faults.py`` (1,000 conversations); docs/flows.md ("Faults") has the figures.

The stack runs on a fresh MariaDB database and a redis-server of its own (free ports). The people are
spread over several connected accounts, each in a workspace of its own (signed up and connected over
the API like a user would, on the free plan), because one account may send at most 750 DMs an hour
(docs/instagram.md#rate-limits) and a conversation sends up to 3: an account serves at most
:data:`PER_ACCOUNT` conversations, with the budget every new account gets (750, the documented
ceiling; nothing is raised in the database). Every account gets its own follow gate.

All conversations are open at once: every comment is posted up front (:data:`COMMENT_WORKERS`), and
each person taps as soon as their message arrives at the sandbox (:data:`TAP_WORKERS`), so that at
the peak hundreds of runs wait for their next step together. Every webhook is posted again with
probability ``duplicate_rate`` (Meta's redeliveries). Half the people follow the account from the
start (comment -> private reply with the button -> tap -> the link); the other half do not (tap ->
"follow us first" -> they follow -> "I followed" -> the link). Faults:

- a **Redis restart**: once ``REDIS_RESTART_AT`` of the conversations have finished, the redis-server
  is stopped and started again on the same port ``REDIS_DOWN_S`` later (empty: nothing persisted);
- a **sandbox token expiry**, mid-run, for one account (the first, "the expiring account"): it hosts
  ``expiry_share`` of the people as the expiring ones and as many normal ones, posted first. The
  expiring people get their private reply and hold their tap; once every normal conversation of
  that account has finished, its token expires (``POST /_sandbox/faults`` ``{"expire_tokens":
  [account]}``) and they tap, while the other accounts' conversations go on. Their next step cannot
  be sent: it must end with the reason logged (the row parked ``needs_reauth``, the account flagged,
  or the run ended with a reason), never silently (the stack has no reconnect without the OAuth dance).

:func:`check` returns what is wrong (an empty list when nothing is): a normal conversation whose run
is not ``completed`` or whose link never came, any step twice at the sandbox (per recipient and
text), a dedupe key twice in ``outbound_messages``, a sent row the sandbox has no DM for, an account
that received more DMs than its hourly budget, an expired person with no logged reason.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import RunningStack, free_port, launch

COMMENT_WORKERS = 4
TAP_WORKERS = 12
REDIS_RESTART_AT = 0.3
REDIS_DOWN_S = 1.5
KEYWORD = "GATE"
LINK = "https://x.example/faults"
GATE_TEXT = "Follow us first"
STALL_S = 120.0
"""The run gives up when nothing arrives at the sandbox and nobody acts for this long."""
HOURLY_CAP = 750
"""DMs an account may send in an hour: Instagram's documented ceiling, the most the limiter allows
(``PRIVATE_REPLY_HOURLY_CEILING``) and the budget every account connected on this stack gets."""
MAX_DMS_PER_CONVERSATION = 3
PER_ACCOUNT = HOURLY_CAP // MAX_DMS_PER_CONVERSATION
PASSWORD = "correct horse battery"
STACK_ENV = {
    "DEFAULT_HOURLY_SEND_BUDGET": str(HOURLY_CAP),
    "PER_SECOND_SEND_CAP": "100",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


def accounts_needed(conversations: int, expiry_share: float = 0.05) -> int:
    """How many accounts :func:`play` spreads ``conversations`` over (see :func:`layout`)."""
    return 1 + max(p.account for p in layout(conversations, expiry_share))


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


# ---------------------------------------------------------------------------------------- people


@dataclass
class Person:
    igsid: str
    comment_id: str
    account: int
    follows_first: bool
    expired: bool = False
    webhooks: int = 0
    duplicates: int = 0
    stage: str = "new"
    """new -> commented -> tapped (-> followed) -> done; an expiring person: commented -> held -> held
    tapped; failed when a request of theirs failed."""
    comment_at: float = 0.0
    tap_at: float = 0.0
    problem: str | None = None

    @property
    def done(self) -> bool:
        return self.stage == "done"


def layout(conversations: int, expiry_share: float, per_account: int = PER_ACCOUNT) -> list[Person]:
    """The people in posting order. With an expiry, account 0 comes first with as many normal people as
    expiring ones; everyone else is dealt round-robin over the fewest accounts that keep each at
    ``per_account`` or fewer."""
    expiring = max(1, round(conversations * expiry_share)) if expiry_share else 0
    first = min(conversations, 2 * expiring)
    if first > per_account:
        raise ValueError(f"{expiring} expiring people need {first} on one account, above {per_account}")
    others = math.ceil((conversations - first) / per_account)
    offset = 1 if first else 0
    return [
        Person(
            igsid=f"78{index:013d}",
            comment_id=f"179{7_000_000_000_000 + index:014d}",
            account=0 if index < first else offset + (index - first) % others,
            follows_first=index % 2 == 0,
            expired=first - expiring <= index < first,
        )
        for index in range(conversations)
    ]


# ---------------------------------------------------------------------------------------- the run


@dataclass
class Outcome:
    people: list[Person]
    accounts: list[str]
    messages: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    logs: list[dict[str, Any]]
    seconds: float
    step_ms: dict[str, list[float]] = field(default_factory=dict)
    """Tap -> the next message at the sandbox, by tap payload; ``comment`` is comment -> private reply."""
    tap_to_link_ms: list[float] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


class Scenario:
    """Drives every conversation from what arrives at the sandbox: one reader polls the sandbox's sent
    messages (only the new ones, ``?offset=``) and hands each to its person, whose next request goes to
    a worker pool; the main thread only waits until everyone has settled."""

    def __init__(
        self,
        stack: RunningStack,
        accounts: list[str],
        people: list[Person],
        redis_server: RestartableRedis | None,
        *,
        duplicate_rate: float,
        seed: int = 13,
    ) -> None:
        self.stack, self.accounts, self.people = stack, accounts, people
        self.redis_server, self.duplicate_rate = redis_server, duplicate_rate
        self.rng = random.Random(seed)
        self.lock = threading.Condition()
        self.local = threading.local()
        self.by_recipient = {p.igsid: p for p in people} | {p.comment_id: p for p in people}
        self.comments = ThreadPoolExecutor(COMMENT_WORKERS, thread_name_prefix="comment")
        self.taps = ThreadPoolExecutor(TAP_WORKERS, thread_name_prefix="tap")
        self.step_ms: dict[str, list[float]] = defaultdict(list)
        self.tap_to_link_ms: list[float] = []
        self.events: list[str] = []
        self.started = time.monotonic()
        self.progress_at = self.started
        self.seen = 0
        self.expiring_account_left = sum(1 for p in people if p.account == 0 and not p.expired)
        self.held: list[Person] = []
        self.finished = 0
        self.restart_after = max(1, int(sum(1 for p in people if not p.expired) * REDIS_RESTART_AT))
        self.expired_now = not any(p.expired for p in people)
        self.stopped = threading.Event()
        self.restarter = threading.Thread(target=self._restart_redis, daemon=True)

    # -- requests ---------------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = httpx.Client(timeout=30)
        return client

    def _post(self, person: Person, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        with self.lock:
            duplicate = self.rng.random() < self.duplicate_rate
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": self.stack.sign(raw)}
        url = f"{self.stack.api_url}/webhooks/instagram"
        self._client().post(url, content=raw, headers=headers).raise_for_status()
        person.webhooks += 1
        if duplicate:
            self._client().post(url, content=raw, headers=headers).raise_for_status()
            person.duplicates += 1

    def _sandbox(self, path: str, payload: dict[str, Any]) -> None:
        self._client().post(f"{self.stack.sandbox_url}{path}", json=payload).raise_for_status()

    def _act(self, pool: ThreadPoolExecutor, person: Person, action: Callable[[Person], None]) -> None:
        def run() -> None:
            try:
                action(person)
            except (httpx.HTTPError, RuntimeError) as error:
                with self.lock:
                    person.stage, person.problem = "failed", f"{person.stage}: {error!r}"
                    self.lock.notify_all()

        pool.submit(run)

    def _comment(self, person: Person) -> None:
        from replyflow.domain.webhook_bodies import comment_body

        account = self.accounts[person.account]
        body = comment_body(text=KEYWORD, account=account, comment_id=person.comment_id, from_id=person.igsid)
        value = body["entry"][0]["changes"][0]["value"]
        self._sandbox(
            "/_sandbox/comments",
            {
                "id": value["id"],
                "account_id": account,
                "from_id": person.igsid,
                "username": value["from"].get("username"),
                "text": KEYWORD,
                "media_id": value["media"]["id"],
            },
        )
        with self.lock:
            person.stage, person.comment_at = "commented", time.time()
        self._post(person, body)

    def _tap(self, person: Person, payload: str, *, follows: bool) -> None:
        from replyflow.domain.webhook_bodies import postback_body

        account = self.accounts[person.account]
        self._sandbox("/_sandbox/inbound", {"account_id": account, "sender_id": person.igsid})
        if follows:
            self._sandbox(f"/_sandbox/users/{person.igsid}/follows", {"account_id": account, "follows": True})
        person.tap_at = time.time()
        self._post(person, postback_body(payload=payload, account=account, from_id=person.igsid))

    def _get_link(self, person: Person) -> None:
        from replyflow.domain.flows import FOLLOW_GATE_TAP

        self._tap(person, FOLLOW_GATE_TAP, follows=person.follows_first or person.expired)

    def _followed(self, person: Person) -> None:
        from replyflow.domain.flows import FOLLOW_GATE_FOLLOWED

        self._tap(person, FOLLOW_GATE_FOLLOWED, follows=True)

    # -- what arrives at the sandbox ----------------------------------------------------------------

    def read_inbox(self) -> None:
        """The reader thread: the new sent messages, each to its person, until :meth:`stop`."""
        client = httpx.Client(timeout=30)
        try:
            while not self.stopped.is_set():
                try:
                    response = client.get(
                        f"{self.stack.sandbox_url}/_sandbox/messages", params={"offset": self.seen}
                    )
                    new = list(response.json()["messages"])
                except (httpx.HTTPError, ValueError, KeyError):
                    new = []
                for message in new:
                    self._arrived(message)
                self.seen += len(new)
                time.sleep(0.05 if new else 0.1)
        finally:
            client.close()

    def _arrived(self, message: dict[str, Any]) -> None:
        recipient = message["recipient"]
        person = self.by_recipient.get(recipient.get("comment_id") or recipient.get("id") or "")
        if person is None:
            return
        text, at = json.dumps(message["message"]), float(message["received_at"])
        with self.lock:
            self.progress_at = time.monotonic()
            if "comment_id" in recipient and person.stage == "commented":
                self.step_ms["comment"].append((at - person.comment_at) * 1000)
                self._replied(person)
            elif GATE_TEXT in text and person.stage == "tapped" and not person.follows_first:
                self.step_ms["GET_LINK"].append((at - person.tap_at) * 1000)
                person.stage = "followed"
                self._act(self.taps, person, self._followed)
            elif LINK in text and person.stage in {"tapped", "followed"}:
                latency = (at - person.tap_at) * 1000
                self.step_ms["GET_LINK" if person.stage == "tapped" else "I_FOLLOWED"].append(latency)
                self.tap_to_link_ms.append(latency)
                self._finished(person)
            self.lock.notify_all()

    def _replied(self, person: Person) -> None:
        if person.expired:
            person.stage = "held"
            self.held.append(person)
            self._maybe_expire()
        else:
            person.stage = "tapped"
            self._act(self.taps, person, self._get_link)

    def _finished(self, person: Person) -> None:
        person.stage = "done"
        self.finished += 1
        if person.account == 0:
            self.expiring_account_left -= 1
            self._maybe_expire()
        if self.finished == self.restart_after and self.redis_server is not None:
            self.restarter.start()

    def _maybe_expire(self) -> None:
        expiring = sum(1 for p in self.people if p.expired)
        if self.expired_now or self.expiring_account_left or len(self.held) < expiring:
            return
        self.expired_now = True
        held = list(self.held)

        def expire(_: Person) -> None:
            account = self.accounts[0]
            self._client().post(
                f"{self.stack.sandbox_url}/_sandbox/faults", json={"expire_tokens": [account]}
            ).raise_for_status()
            self.events.append(f"token of {account} expired at {time.monotonic() - self.started:.1f} s")
            for person in held:
                self._act(self.taps, person, self._tap_expired)

        self._act(self.taps, held[0], expire)

    def _tap_expired(self, person: Person) -> None:
        self._get_link(person)
        with self.lock:
            person.stage = "held tapped"
            self.progress_at = time.monotonic()
            self.lock.notify_all()

    def _restart_redis(self) -> None:
        assert self.redis_server is not None
        self.events.append(f"redis stopped at {time.monotonic() - self.started:.1f} s")
        self.redis_server.stop()
        time.sleep(REDIS_DOWN_S)
        self.redis_server.start()
        self.events.append(f"redis started at {time.monotonic() - self.started:.1f} s")

    # -- the whole run ------------------------------------------------------------------------------

    def _settled(self) -> bool:
        return all(p.stage in {"done", "failed", "held tapped"} for p in self.people)

    def run(self) -> None:
        """Every comment posted, then wait until everyone settled or nothing moved for ``STALL_S``."""
        reader = threading.Thread(target=self.read_inbox, daemon=True)
        reader.start()
        for person in self.people:
            self._act(self.comments, person, self._comment)
        try:
            with self.lock:
                while not self._settled() and time.monotonic() - self.progress_at < STALL_S:
                    self.lock.wait(1.0)
        finally:
            self.comments.shutdown(wait=True, cancel_futures=True)
            self.taps.shutdown(wait=True, cancel_futures=True)
            self.stopped.set()
            reader.join(10)
            if self.restarter.is_alive():
                self.restarter.join(30)


def play(
    stack: RunningStack,
    redis_server: RestartableRedis,
    accounts: list[str],
    database_url: str,
    *,
    conversations: int,
    duplicate_rate: float = 0.3,
    expiry_share: float = 0.05,
    restart_redis: bool = True,
) -> Outcome:
    """Run the conversations with the faults; returns what the sandbox and the database hold after."""
    people = layout(conversations, expiry_share)
    if len(accounts) < 1 + max(p.account for p in people):
        raise ValueError(
            f"{conversations} conversations need {accounts_needed(conversations, expiry_share)} accounts"
        )
    scenario = Scenario(
        stack, accounts, people, redis_server if restart_redis else None, duplicate_rate=duplicate_rate
    )
    scenario.run()
    stack.wait_idle(timeout=STALL_S)
    seconds = time.monotonic() - scenario.started
    rows, runs, logs = _read_database(database_url)
    return Outcome(
        people,
        accounts,
        stack.sandbox_messages(),
        rows,
        runs,
        logs,
        seconds,
        step_ms=dict(scenario.step_ms),
        tap_to_link_ms=scenario.tap_to_link_ms,
        events=scenario.events,
    )


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
    problems += [
        f"account {account} sent {n} DMs, above its hourly budget of {HOURLY_CAP}"
        for account, n in dms_per_account(outcome).items()
        if n > HOURLY_CAP
    ]
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


def dms_per_account(outcome: Outcome) -> dict[str, int]:
    return dict(Counter(str(m["account_id"]) for m in outcome.messages))


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
        problems.append(f"{person.igsid}: {person.problem or 'unfinished at ' + person.stage}")
    if messages != expected:
        problems.append(f"{person.igsid} got {messages} messages, expected {expected}")
    if run is None or run["status"] != "completed":
        problems.append(f"{person.igsid}: run {run}")
    return problems


def _expired_problems(person: Person, run: dict[str, Any] | None, outcome: Outcome) -> list[str]:
    """The step after the expiry is not at the sandbox and its reason is on record."""
    if person.stage != "held tapped":
        return [f"{person.igsid} (token expired): {person.problem or 'never tapped, at ' + person.stage}"]
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
        "accounts": len(outcome.accounts),
        "webhooks": sum(p.webhooks for p in people),
        "duplicates": sum(p.duplicates for p in people),
        "completed": sum(1 for p in people if p.done),
        "token_expired": len(expired),
        "expired_reasons": dict(Counter(_reason(p, outcome) for p in expired)),
        "dms": len(outcome.messages),
        "most_dms_per_account": max(dms_per_account(outcome).values(), default=0),
        "seconds": round(outcome.seconds, 1),
        "events": outcome.events,
    }


# ------------------------------------------------------------------------------------ the stack


@contextmanager
def faults_stack(
    database_url: str, *, accounts: int = 1, workdir: Path | None = None
) -> Iterator[tuple[RunningStack, RestartableRedis, list[str]]]:
    """The stack on ``database_url``, a restartable redis-server and ``accounts`` connected accounts, each
    in a workspace of its own with a follow gate; yields (stack, redis, the accounts' Instagram ids)."""
    with tempfile.TemporaryDirectory(prefix="rf-flow-faults-") as tmp:
        root = workdir or Path(tmp)
        redis_server = RestartableRedis(root)
        redis_server.start()
        stack = launch(
            root / "stack", database_url=database_url, env={**STACK_ENV, "REDIS_URL": redis_server.url}
        )
        try:
            ig_ids = [_connect_with_gate(stack, index) for index in range(accounts)]
            stack.wait_idle()
            stack.clear_sandbox_messages()
            yield stack, redis_server, ig_ids
        finally:
            stack.stop()
            redis_server.stop()


def _connect_with_gate(stack: RunningStack, index: int) -> str:
    """Sign up workspace ``index``, connect its sandbox account and create the follow gate on it."""
    email, ig_user_id = f"flow-faults-{index}@example.com", f"178415{index:011d}"
    signup = {"email": email, "password": PASSWORD, "workspace_name": f"Flow faults {index}"}
    stack.request("POST", "/v1/auth/signup", json=signup).raise_for_status()
    login = stack.request("POST", "/v1/auth/login", json={"email": email, "password": PASSWORD})
    login.raise_for_status()
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    connect = {"ig_user_id": ig_user_id, "username": f"flow.faults.{index}"}
    account = stack.request("POST", "/v1/accounts/sandbox", headers=auth, json=connect)
    account.raise_for_status()
    gate = stack.request(
        "POST",
        "/v1/flows/follow-gate",
        headers=auth,
        json={"account_id": account.json()["id"], "keyword": KEYWORD, "message": "The guide", "link": LINK},
    )
    gate.raise_for_status()
    return ig_user_id
