"""Tenant shards on two MariaDB databases (docs/scaling.md#database-sharding): the directory is shard
``s0``'s database, ``s1`` is another. Tenants are placed on the emptiest shard, their rows live only
there, the isolation walk of ``test_api_isolation`` passes with A and B on different shards, webhook
routing finds an account through the directory, and ``replyflow shards move`` moves a tenant, resuming
after a crash at any step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import sqlalchemy as sa

from replyflow.clock import utcnow
from replyflow.db.migrate import upgrade_all
from replyflow.services.shard_moves import ShardMover
from tests.conftest import fresh_mysql_database
from tests.integration import test_api_isolation as walk
from tests.unit.test_api_support import ApiEnv, make_env

pytestmark = pytest.mark.integration

# The isolation walk, run again here with this module's sharded ``env``.
tenant_a = walk.tenant_a
test_every_route_with_tenant_b_against_tenant_a_ids_is_404 = (
    walk.test_every_route_with_tenant_b_against_tenant_a_ids_is_404
)
test_body_references_to_another_tenant_are_404 = walk.test_body_references_to_another_tenant_are_404
test_bad_tokens_are_401 = walk.test_bad_tokens_are_401


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def shard_urls() -> Iterator[dict[str, str]]:
    with ExitStack() as stack:
        urls = {name: stack.enter_context(fresh_mysql_database(f"rf_shard_{name}")) for name in ("s0", "s1")}
        upgrade_all(urls["s0"], urls)
        yield urls


@pytest.fixture(scope="module")
def env(shard_urls: dict[str, str], redis_server: str) -> Iterator[ApiEnv]:
    yield from make_env(shard_urls["s0"], redis_server, database_shard_urls=shard_urls, sandbox_tools=True)


def _count(url: str, table: str, tenant_id: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            query = sa.text(f"SELECT COUNT(*) FROM {table} WHERE tenant_id = :t")
            return int(conn.scalar(query, {"t": tenant_id}) or 0)
    finally:
        engine.dispose()


def _router(env: ApiEnv) -> Any:
    router = env.deps.clients.shard_router
    assert router is not None
    return router


def test_tenants_are_placed_on_the_emptiest_shard_and_their_rows_live_only_there(
    env: ApiEnv, shard_urls: dict[str, str], tenant_a: dict[str, str]
) -> None:
    router = _router(env)
    d = env.signup("TenantD")
    shard_a = router.shard_of(tenant_a["tenant_id"])
    shard_d = router.shard_of(d["tenant_id"])
    assert {shard_a, shard_d} == {"s0", "s1"}
    other = "s1" if shard_a == "s0" else "s0"
    assert _count(shard_urls[shard_a], "instagram_accounts", tenant_a["tenant_id"]) == 1
    assert _count(shard_urls[shard_a], "automations", tenant_a["tenant_id"]) == 1
    assert _count(shard_urls[other], "automations", tenant_a["tenant_id"]) == 0
    assert _count(shard_urls[shard_a], "contacts", tenant_a["tenant_id"]) == 1
    # Identity lives in the directory only (s0's database); the shard mirrors the tenant's row.
    assert _count(shard_urls["s0"], "memberships", tenant_a["tenant_id"]) == 2
    assert _count(shard_urls["s1"], "memberships", tenant_a["tenant_id"]) == 0


def test_webhook_routing_finds_the_account_through_the_directory(
    env: ApiEnv, tenant_a: dict[str, str]
) -> None:
    from replyflow.wiring.pipeline import load_route

    route = load_route(env.deps.clients, "17841499000000001")
    assert route is not None
    assert (route.tenant_id, route.account_id) == (tenant_a["tenant_id"], tenant_a["account_id"])
    assert load_route(env.deps.clients, "17841499999999999") is None


def _crash_at(state: str) -> Any:
    def step(reached: str) -> None:
        if reached == state:
            raise Crash(state)

    return step


def test_a_move_resumes_after_a_crash_at_every_step_and_keeps_every_row(
    env: ApiEnv, shard_urls: dict[str, str], tenant_a: dict[str, str]
) -> None:
    router = _router(env)
    tenant_id = tenant_a["tenant_id"]
    source = router.shard_of(tenant_id)
    target = "s1" if source == "s0" else "s0"
    before = {t: _count(shard_urls[source], t, tenant_id) for t in ("automations", "contacts", "flows")}
    for state in ("paused", "copied", "verified", "switched"):
        mover = ShardMover(router, now=utcnow, settle_seconds=0, after_step=_crash_at(state))
        with pytest.raises(Crash):
            mover.move(tenant_id, target)
        if state in ("paused", "copied", "verified"):
            # Paused: the tenant's requests are refused with a code until the switch.
            router.forget(tenant_id)
            response = env.call("GET", "/v1/templates", token=tenant_a["token"])
            assert response.status == 503, response.body
            assert response.body["error"]["code"] == "tenant_moving"
    report = ShardMover(router, now=utcnow, settle_seconds=0).move(tenant_id, target)
    assert report.state == "done"
    assert report.rows["automations"] == 1
    router.forget(tenant_id)
    assert router.shard_of(tenant_id) == target
    after = {t: _count(shard_urls[target], t, tenant_id) for t in ("automations", "contacts", "flows")}
    assert after == before
    assert all(_count(shard_urls[source], t, tenant_id) == 0 for t in before)
    # The tenant works on its new shard: the API and webhook routing.
    automation = env.call("GET", f"/v1/automations/{tenant_a['automation_id']}", token=tenant_a["token"])
    assert automation.status == 200, automation.body
    assert automation.body["name"] == "A automation"
    from replyflow.wiring.pipeline import load_route

    route = load_route(env.deps.clients, "17841499000000001")
    assert route is not None
    assert route.tenant_id == tenant_id
    # And back, in one go.
    back = ShardMover(router, now=utcnow, settle_seconds=0).move(tenant_id, source)
    assert back.state == "done"
    assert _count(shard_urls[source], "automations", tenant_id) == 1
    assert _count(shard_urls[target], "automations", tenant_id) == 0


def _seed_rows(url: str, tenant_id: str, logs: int, days: int) -> None:
    """``logs`` reply logs (some with NULLs and empty strings) and ``days`` x 2 daily stats rows (a
    composite key) for the tenant, written straight to its shard."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO reply_logs (tenant_id, account_id, kind, status, text, detail, created_at)"
                    " VALUES (:t, 'acct', 'dm', 'sent', :text, :detail, NOW())"
                ),
                [
                    {
                        "t": tenant_id,
                        "text": None if i % 3 == 0 else f"hi {i}",
                        "detail": "" if i % 2 else None,
                    }
                    for i in range(logs)
                ],
            )
            conn.execute(
                sa.text(
                    "INSERT INTO daily_stats (tenant_id, day, account_id, automation_id, action, count)"
                    " VALUES (:t, CURRENT_DATE - INTERVAL :d DAY, 'acct', :a, 'sent', :d)"
                ),
                [{"t": tenant_id, "d": d, "a": a} for d in range(days) for a in ("auto-1", "auto-2")],
            )
    finally:
        engine.dispose()


def _text(i: int) -> str | None:
    return None if i % 3 == 0 else f"hi {i}"


@pytest.mark.parametrize("direct", [False, True], ids=["through-python", "insert-select"])
def test_a_move_copies_in_key_range_chunks_and_a_changed_row_names_its_range(
    env: ApiEnv, shard_urls: dict[str, str], monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    from replyflow.db.repositories import shard_copy
    from replyflow.services.shard_moves import ShardMoveError

    monkeypatch.setattr(shard_copy, "CHUNK_ROWS", 4)  # several chunks, composite keys included
    router = _router(env)
    tenant_id = env.signup(f"TenantChunks{int(direct)}")["tenant_id"]
    source = router.shard_of(tenant_id)
    target = "s1" if source == "s0" else "s0"
    _seed_rows(shard_urls[source], tenant_id, logs=23, days=5)
    mover = ShardMover(router, now=utcnow, settle_seconds=0, direct=direct, after_step=_crash_at("copied"))
    with pytest.raises(Crash):
        mover.move(tenant_id, target)
    assert _count(shard_urls[target], "reply_logs", tenant_id) == 23
    assert _count(shard_urls[target], "daily_stats", tenant_id) == 10
    # A row changed on the target after the copy (NULL -> ''): the verification names its range.
    engine = sa.create_engine(shard_urls[target], poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        last = conn.scalar(sa.text("SELECT MAX(id) FROM reply_logs WHERE tenant_id = :t"), {"t": tenant_id})
        conn.execute(sa.text("UPDATE reply_logs SET text = '' WHERE id = :id"), {"id": last})
    engine.dispose()
    with pytest.raises(ShardMoveError, match=r"reply_logs key \(\d+, \.\.\.\]"):
        ShardMover(router, now=utcnow, settle_seconds=0, direct=direct).move(tenant_id, target)
    # Back at ``paused``: the next run copies again and finishes.
    report = ShardMover(router, now=utcnow, settle_seconds=0, direct=direct).move(tenant_id, target)
    assert report.state == "done"
    assert (report.rows["reply_logs"], report.rows["daily_stats"]) == (23, 10)
    assert _count(shard_urls[source], "reply_logs", tenant_id) == 0
    assert _count(shard_urls[source], "daily_stats", tenant_id) == 0
    router.forget(tenant_id)
    assert router.shard_of(tenant_id) == target


class _Requeue:
    """The ``QueueVisibility`` port: deferred bodies are kept (their queue would deliver them later)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def change_visibility(self, queue_arn: str, changes: Any) -> None:
        pass

    def send_again(self, queue_arn: str, bodies: Any, *, delay_seconds: int) -> None:
        self.sent.extend(bodies)


def _old_logs(url: str, tenant_id: str, n: int) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO reply_logs (tenant_id, account_id, kind, status, created_at)"
                " VALUES (:t, 'acct', 'dm', 'sent', NOW() - INTERVAL 1000 DAY)"
            ),
            [{"t": tenant_id}] * n,
        )
    engine.dispose()


def _record(body: str) -> dict[str, Any]:
    return {
        "messageId": "m-1",
        "receiptHandle": "h-1",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:rf-events-default",
    }


def test_a_paused_tenant_is_held_from_jobs_and_workers_and_its_event_is_processed_after_the_switch(
    env: ApiEnv, shard_urls: dict[str, str], tenant_a: dict[str, str]
) -> None:
    """While a move holds A: the retention job's run over A's shard deletes another tenant's expired
    rows but none of A's, and the processor defers A's event (sent again, not failed); after the
    switch the deferred event is processed on A's new shard."""
    import uuid

    from replyflow.db.shards import on_shard
    from replyflow.domain.messages import EventMessage, decode_event_message, queue_priority
    from replyflow.domain.webhook_events import parse_body
    from replyflow.services.jobs.common import Deadline
    from replyflow.services.jobs.retention import run_retention
    from replyflow.services.process_event import EventProcessor
    from replyflow.services.sqs_batch import RetryBackoff, process_batch
    from tests.support_pipeline import DictCache, DictCooldowns, MemoryQueues, comment_body

    router = _router(env)
    tenant_id = tenant_a["tenant_id"]
    source = router.shard_of(tenant_id)
    target = "s1" if source == "s0" else "s0"
    other = env.signup("TenantBeside")["tenant_id"]
    if router.shard_of(other) != source:
        ShardMover(router, now=utcnow, settle_seconds=0).move(other, source)
    _old_logs(shard_urls[source], tenant_id, 3)
    _old_logs(shard_urls[source], other, 2)
    with pytest.raises(Crash):
        ShardMover(router, now=utcnow, settle_seconds=0, after_step=_crash_at("paused")).move(
            tenant_id, target
        )
    router.forget(tenant_id)

    with on_shard(source):
        run_retention(
            env.deps.clients.writer_sessions, now=utcnow(), deadline=Deadline(None), require_archive=False
        )
    assert _count(shard_urls[source], "reply_logs", other) == 0  # the job ran for the others
    assert _count(shard_urls[source], "reply_logs", tenant_id) == 3  # and held A's rows

    body = comment_body("17841499000000001", f"179{uuid.uuid4().int % 10**14:014d}", text="LINK")
    message = EventMessage(
        tenant_id=tenant_id,
        account_id=tenant_a["account_id"],
        priority=queue_priority("default"),
        event=parse_body(body).events[0],
    )
    queues, requeue = MemoryQueues(), _Requeue()
    processor = EventProcessor(
        sessions=env.deps.clients.writer_sessions,
        cache=DictCache(),
        cooldowns=DictCooldowns(),
        publisher=queues,
    )

    def handle(raw: str) -> None:
        decoded = decode_event_message(raw)
        assert isinstance(decoded, EventMessage)
        processor.process(decoded)

    backoff = RetryBackoff(requeue, base_seconds=5, max_seconds=180)
    before = {name: _count(shard_urls[name], "inbound_events", tenant_id) for name in ("s0", "s1")}
    response = process_batch({"Records": [_record(message.to_json())]}, handle, backoff=backoff)
    assert response == {"batchItemFailures": []}  # not failed: deferred
    assert requeue.sent == [message.to_json()]
    assert {name: _count(shard_urls[name], "inbound_events", tenant_id) for name in ("s0", "s1")} == before
    assert queues.published == []

    report = ShardMover(router, now=utcnow, settle_seconds=0).move(tenant_id, target)
    assert report.state == "done"
    assert report.rows["reply_logs"] >= 3
    router.forget(tenant_id)
    response = process_batch({"Records": [_record(requeue.sent[0])]}, handle, backoff=backoff)
    assert response == {"batchItemFailures": []}
    assert len(requeue.sent) == 1  # processed this time
    assert _count(shard_urls[target], "inbound_events", tenant_id) == before[source] + 1
    assert queues.published  # the private reply it decided on was queued


def _entries(url: str, ig_user_id: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        query = sa.text("SELECT tenant_id, account_id FROM account_directory WHERE ig_user_id = :ig")
        rows = [(str(t), str(a)) for t, a in conn.execute(query, {"ig": ig_user_id})]
    engine.dispose()
    return rows


def _connect(env: ApiEnv, tenant_id: str, ig_user_id: str) -> Any:
    from replyflow.db.engine import session_scope
    from replyflow.observability import bind_tenant, clear_tenant
    from replyflow.services.accounts import store_connection

    clients = env.deps.clients
    bind_tenant(tenant_id)
    try:
        with session_scope(clients.writer_sessions) as session:
            return store_connection(
                session,
                clients.cache,
                clients.cipher,
                tenant_id=tenant_id,
                ig_user_id=ig_user_id,
                username="pair",
                access_token="token-of-the-pair",
                expires_in=3600,
                hourly_send_budget=100,
                now=utcnow(),
            )
    finally:
        clear_tenant()


def test_a_crash_between_the_directory_and_shard_commits_is_detected_and_repaired(
    env: ApiEnv, shard_urls: dict[str, str]
) -> None:
    """Connecting an account commits its directory entry first, then the account on the shard. A
    crash between the two leaves an entry without its account: webhooks find no account (no error),
    connecting again succeeds, and the webhook-subscriptions job's repair removes such an entry and
    registers an account that lacks one. Another tenant's claim of the same Instagram account is
    refused before its shard commits."""
    from replyflow.db.shards import repair_account_directory
    from replyflow.errors import ConflictError
    from replyflow.wiring.pipeline import load_route

    router = _router(env)
    tenant_id = env.signup("TenantPair")["tenant_id"]
    if router.shard_of(tenant_id) != "s1":  # s0 is also the directory: one database, one commit
        ShardMover(router, now=utcnow, settle_seconds=0).move(tenant_id, "s1")
        router.forget(tenant_id)
    ig_user_id = "17841499000000555"
    armed = [True]

    def crash_once(_conn: Any) -> None:
        if armed[0]:
            armed[0] = False
            raise Crash("between the commits")

    sa.event.listen(router.shards["s1"], "commit", crash_once)
    try:
        with pytest.raises(Crash):
            _connect(env, tenant_id, ig_user_id)
    finally:
        sa.event.remove(router.shards["s1"], "commit", crash_once)
    [(entry_tenant, lost_id)] = _entries(shard_urls["s0"], ig_user_id)  # the claim committed first
    assert entry_tenant == tenant_id
    assert _count(shard_urls["s1"], "instagram_accounts", tenant_id) == 0  # the account did not
    assert load_route(env.deps.clients, ig_user_id) is None  # a webhook finds no account

    view = _connect(env, tenant_id, ig_user_id)  # connecting again replaces the entry
    assert view.id != lost_id
    assert _entries(shard_urls["s0"], ig_user_id) == [(tenant_id, view.id)]
    route = load_route(env.deps.clients, ig_user_id)
    assert route is not None
    assert (route.tenant_id, route.account_id) == (tenant_id, view.id)

    # Another tenant's claim is refused before its shard commits.
    other = env.signup("TenantPairOther")["tenant_id"]
    with pytest.raises(ConflictError):
        _connect(env, other, ig_user_id)
    assert _count(shard_urls[router.shard_of(other)], "instagram_accounts", other) == 0

    # The repair: an entry without its account goes, an account without its entry comes back.
    directory = sa.create_engine(shard_urls["s0"], poolclass=sa.pool.NullPool)
    with directory.begin() as conn:
        conn.execute(sa.text("DELETE FROM account_directory WHERE ig_user_id = :ig"), {"ig": ig_user_id})
        conn.execute(
            sa.text("INSERT INTO account_directory (ig_user_id, tenant_id, account_id) VALUES (:ig, :t, :a)"),
            {"ig": "17841499000000556", "t": tenant_id, "a": lost_id},
        )
    directory.dispose()
    assert repair_account_directory(router, "s1") == {
        "directory_entries_added": 1,
        "directory_entries_removed": 1,
    }
    assert _entries(shard_urls["s0"], ig_user_id) == [(tenant_id, view.id)]
    assert _entries(shard_urls["s0"], "17841499000000556") == []
    assert repair_account_directory(router, "s1") == {
        "directory_entries_added": 0,
        "directory_entries_removed": 0,
    }


def test_the_cli_lists_the_shards_and_moves_a_tenant(
    env: ApiEnv, shard_urls: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from local.cli import build_parser, install_settings, reset_settings, run_command

    tenant_id = env.signup("TenantCli")["tenant_id"]
    router = _router(env)
    target = "s1" if router.shard_of(tenant_id) == "s0" else "s0"
    install_settings(env.settings)
    try:
        assert (
            run_command(
                build_parser().parse_args(["shards", "move", tenant_id, "--to", target, "--settle", "0"])
            )
            == 0
        )
        assert json.loads(capsys.readouterr().out)["state"] == "done"
        assert run_command(build_parser().parse_args(["shards", "list"])) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [s["name"] for s in listed["shards"]] == ["s0", "s1"]
        assert listed["moves"] == []
        assert run_command(build_parser().parse_args(["shards", "move", tenant_id, "--to", "s7"])) == 1
        assert "not_found" in capsys.readouterr().err
    finally:
        reset_settings()
    router.forget(tenant_id)
    assert router.shard_of(tenant_id) == target


def test_a_move_to_an_unknown_shard_or_of_an_unknown_tenant_is_refused(env: ApiEnv) -> None:
    from replyflow.errors import NotFoundError

    mover = ShardMover(_router(env), now=utcnow, settle_seconds=0)
    with pytest.raises(NotFoundError):
        mover.move("0" * 26, "s1")
    with pytest.raises(NotFoundError):
        mover.move("0" * 26, "s9")


def test_meta_callbacks_reach_the_tenant_on_any_shard(
    env: ApiEnv, shard_urls: dict[str, str], tenant_a: dict[str, str]
) -> None:
    """Last in this module: it erases a contact of A and disconnects A's account."""
    from replyflow.services.meta_callbacks import sign_request

    secret = env.settings.instagram_app_secret.get_secret_value()
    router = _router(env)
    shard = next(name for name in router.names if name != router.default)  # not where unbound sessions go
    ShardMover(router, now=utcnow, settle_seconds=0).move(tenant_a["tenant_id"], shard)
    contacts = _count(shard_urls[shard], "contacts", tenant_a["tenant_id"])
    assert contacts >= 1  # A's contact, and the commenter of an event processed above
    receipt = env.deps.meta_callbacks.request_deletion(
        sign_request({"user_id": tenant_a["contact_igsid"]}, secret), status_url="https://x/{code}"
    )
    assert receipt.confirmation_code
    assert _count(shard_urls[shard], "contacts", tenant_a["tenant_id"]) == contacts - 1
    result = env.deps.meta_callbacks.deauthorize(sign_request({"user_id": "17841499000000001"}, secret))
    assert result.accounts_disconnected == 1
