"""Reconciliation on the real MariaDB and Redis: the account query, the seen-check and the checkpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.sandbox import SandboxServer
from processor import handler as processor
from replyflow.adapters.graph_tokens import HttpxGraphTokenClient
from replyflow.clock import utcnow
from replyflow.db.engine import session_scope
from replyflow.db.models import InstagramAccount
from replyflow.services.demo_seed import seed_demo
from replyflow.services.jobs.reconcile import checkpoint_key
from replyflow.settings import Settings
from replyflow.wiring.pipeline import build_pipeline
from sender import handler as send_handler
from tests.conftest import fresh_mysql_database
from tests.support_pipeline import LocalQueues, ScriptedGraph
from tests.unit.test_reconcile import APP_ID, SECRET, FakeClock, World, sandbox_client


@pytest.fixture
def world(redis_url: str) -> Iterator[World]:
    with fresh_mysql_database("rf_recon") as url:
        clock = FakeClock()
        server = SandboxServer(port=0, app_id=APP_ID, app_secret=SECRET, clock=clock, seed=5)
        queues, sender = LocalQueues(), ScriptedGraph()
        settings = Settings(
            environment="test", database_url=url, redis_url=redis_url, instagram_app_secret=SECRET
        )
        deps = build_pipeline(settings, publisher=queues, visibility=queues.visibility, graph=sender)
        queues.bind("processor", processor.make_handler(lambda: deps))
        queues.bind("sender", send_handler.make_handler(lambda: deps))
        with session_scope(deps.clients.writer_sessions) as session:
            demo = seed_demo(session, deps.clients.cipher, "placeholder", now=utcnow())
            account = session.get(InstagramAccount, demo.account_id)
            assert account is not None
            token = server.issue_token(demo.ig_user_id, "replyflow.demo")
            account.access_token_encrypted = deps.clients.cipher.encrypt(token, context=account.id)
        client = sandbox_client(server)
        reader = HttpxGraphTokenClient(
            base_url="http://sandbox.test", graph_base="http://sandbox.test/v23.0", timeout=5, client=client
        )
        try:
            yield World(clock, server, reader, queues, sender, demo, deps)
        finally:
            deps.clients.cache.delete(checkpoint_key(demo.account_id))
            client.close()
            deps.clients.writer_sessions.kw["bind"].dispose()


def test_a_missed_comment_is_fed_once_and_answered_once_on_mariadb(world: World) -> None:
    world.comment("17900000000000101")
    world.comment("17900000000000102", media_id="18000000000000102", age=120)
    world.webhook("17900000000000102")  # this one arrived
    world.deliver()
    first = world.run()
    assert first.counts["comments_read"] == 2
    assert first.counts["comments_fed"] == 1
    world.deliver()
    assert sorted(c["recipient"]["comment_id"] for c in world.private_replies()) == [
        "17900000000000101",
        "17900000000000102",
    ]
    assert world.run().counts["comments_fed"] == 0
    world.webhook("17900000000000101")
    world.deliver()
    assert len(world.private_replies()) == 2


def test_the_checkpoint_lives_in_redis(world: World) -> None:
    from replyflow.services.jobs.reconcile import ReconcileLimits

    for n in range(3):
        world.comment(f"1790000000000020{n}", media_id=f"1800000000000020{n}", age=3600.0 * (3 - n))
    world.run(ReconcileLimits(max_calls=2))
    checkpoint = world.deps.clients.cache.get_json(checkpoint_key(world.demo.account_id))
    assert checkpoint is not None
    assert checkpoint["resume_below"]["id"] == "18000000000000202"


def test_a_send_pause_in_redis_keeps_the_job_off_the_account(world: World, redis_url: str) -> None:
    import redis

    from replyflow.adapters.rate_limiter import RedisRateLimiter

    limiter = RedisRateLimiter(redis.Redis.from_url(redis_url), namespace=f"rftest:{world.demo.account_id}")
    world.comment("17900000000000301")
    assert limiter.paused_seconds(world.demo.account_id) == 0.0
    limiter.pause(world.demo.account_id, 60)
    assert 55 < limiter.paused_seconds(world.demo.account_id) <= 60
    assert world.run(pauses=limiter).counts["accounts_paused_by_sends"] == 1

    other = RedisRateLimiter(redis.Redis.from_url(redis_url), namespace=f"rftest:b{world.demo.account_id}")
    world.server.app.state.faults.throttle_next = 1
    world.server.app.state.faults.throttle_seconds = 1200
    assert world.run(pauses=other).counts["stopped_throttled"] == 1
    assert other.paused_seconds(world.demo.account_id) > 1100  # the sends wait the throttle out too
