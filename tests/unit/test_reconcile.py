"""Reconciliation of missed comment webhooks: the sandbox's media and comments reads, the job over
them (through the real httpx adapter on an ``httpx.MockTransport`` into the in-process sandbox: no
sockets) and the pipeline after it (SQLite, fakeredis, a scripted sender)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from local.sandbox import Request, SandboxServer
from processor import handler as processor
from replyflow.adapters.graph_tokens import HttpxGraphTokenClient
from replyflow.clock import utcnow
from replyflow.db.engine import session_scope
from replyflow.db.models import Automation, OutboundMessage
from replyflow.domain.messages import EventMessage
from replyflow.ports import GraphCallError, GraphPage
from replyflow.services import cache_keys
from replyflow.services.demo_seed import DemoTenant, seed_demo
from replyflow.services.jobs.common import Deadline, JobResult
from replyflow.services.jobs.reconcile import ReconcileLimits, checkpoint_key, run_reconcile_comments
from replyflow.settings import Settings
from replyflow.wiring.pipeline import PipelineDeps, build_pipeline
from sender import handler as send_handler
from tests.support_pipeline import (
    LocalQueues,
    ScriptedGraph,
    comment_body,
    lambda_context,
    seed_tenant,
    webhook_post,
)
from webhook import handler as webhook

APP_ID = "reconcile-app"
SECRET = "reconcile-secret"
DAY = 24 * 3600.0


class FakeClock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def sandbox_client(server: SandboxServer) -> httpx.Client:
    """httpx into the in-process sandbox app."""

    def handle(request: httpx.Request) -> httpx.Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        query = dict(request.url.params.multi_items())
        response = server.app.handle(
            Request(request.method, request.url.path, query, headers, request.content)
        )
        return httpx.Response(response.status, json=response.body, headers=response.headers)

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="http://sandbox.test")


@dataclass
class World:
    clock: FakeClock
    server: SandboxServer
    reader: HttpxGraphTokenClient
    queues: LocalQueues
    sender: ScriptedGraph
    demo: DemoTenant
    deps: PipelineDeps

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now, UTC).replace(tzinfo=None)

    def comment(
        self,
        comment_id: str,
        text: str = "LINK please",
        *,
        media_id: str = "18000000000000001",
        age: float = 60.0,
        **extra: Any,
    ) -> None:
        body = {
            "id": comment_id,
            "account_id": self.demo.ig_user_id,
            "media_id": media_id,
            "from_id": extra.pop("from_id", "7351928465012834"),
            "username": "maya.creates",
            "text": text,
            "timestamp": self.clock.now - age,
            **extra,
        }
        response = self.server.app.handle(
            Request(
                "POST",
                "/_sandbox/comments",
                {},
                {"content-type": "application/json"},
                httpx.Request("POST", "http://x", json=body).content,
            )
        )
        assert response.status == 200, response.body

    def run(self, limits: ReconcileLimits | None = None, reader: Any = None, pauses: Any = None) -> JobResult:
        return run_reconcile_comments(
            self.deps.clients.writer_sessions,
            reader or self.reader,
            self.deps.clients.cipher,
            self.queues,
            self.deps.clients.cache,
            now=self.now(),
            deadline=Deadline.unlimited(),
            limits=limits,
            pauses=pauses,
        )

    def deliver(self) -> None:
        self.queues.drain()
        assert self.queues.dead_lettered() == []

    def private_replies(self) -> list[dict[str, Any]]:
        return [c for c in self.sender.calls if "comment_id" in c.get("recipient", {})]

    def webhook(self, comment_id: str, text: str = "LINK please") -> None:
        event = webhook_post(comment_body(self.demo.ig_user_id, comment_id, text), SECRET.encode())
        assert webhook.make_handler(lambda: self.deps)(event, lambda_context())["statusCode"] == 200


@pytest.fixture
def world(sqlite_url: str) -> Iterator[World]:
    clock = FakeClock()
    server = SandboxServer(port=0, app_id=APP_ID, app_secret=SECRET, clock=clock, seed=3)
    queues, sender = LocalQueues(), ScriptedGraph()
    settings = Settings(environment="test", database_url=sqlite_url, instagram_app_secret=SECRET)
    deps = build_pipeline(settings, publisher=queues, visibility=queues.visibility, graph=sender)
    queues.bind("processor", processor.make_handler(lambda: deps))
    queues.bind("sender", send_handler.make_handler(lambda: deps))
    with session_scope(deps.clients.writer_sessions) as session:
        demo = seed_demo(session, deps.clients.cipher, "placeholder", now=utcnow())
    token = server.issue_token(demo.ig_user_id, "replyflow.demo")
    with session_scope(deps.clients.writer_sessions) as session:
        from replyflow.db.models import InstagramAccount

        account = session.get(InstagramAccount, demo.account_id)
        assert account is not None
        account.access_token_encrypted = deps.clients.cipher.encrypt(token, context=account.id)
    client = sandbox_client(server)
    reader = HttpxGraphTokenClient(
        base_url="http://sandbox.test", graph_base="http://sandbox.test/v23.0", timeout=5, client=client
    )
    yield World(clock, server, reader, queues, sender, demo, deps)
    deps.clients.cache.delete(
        cache_keys.account_route_key(demo.ig_user_id),
        cache_keys.automations_key(demo.tenant_id, demo.account_id),
        checkpoint_key(demo.account_id),
    )
    client.close()


# The sandbox's reads ---------------------------------------------------------------------------


def test_the_sandbox_lists_an_accounts_recent_media_newest_first_with_cursors(world: World) -> None:
    for n, age in enumerate([3 * DAY, 1 * DAY, 9 * DAY, 2 * DAY]):
        world.comment(f"1790000000000000{n}", media_id=f"1800000000000000{n}", age=age)
    since = int(world.clock.now - 7 * DAY)
    token = world.server.issue_token(world.demo.ig_user_id, "replyflow.demo")
    ids: list[str] = []
    after: str | None = None
    while True:
        response = world.reader._http.get(
            f"http://sandbox.test/v23.0/{world.demo.ig_user_id}/media",
            params={
                "fields": "id,timestamp,comments_count",
                "since": str(since),
                "limit": "2",
                **({"after": after} if after else {}),
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [item["id"] for item in body["data"]]
        assert all(item["comments_count"] == 1 for item in body["data"])
        if "next" not in body["paging"]:
            break
        after = body["paging"]["cursors"]["after"]
    assert ids == ["18000000000000001", "18000000000000003", "18000000000000000"]  # 9 days old: out


def test_the_sandbox_serves_only_the_tokens_own_media_and_top_level_comments(world: World) -> None:
    world.comment("17900000000000001", media_id="18000000000000001")
    world.comment("17900000000000002", media_id="18000000000000001", parent_id="17900000000000001")
    token = world.server.issue_token(world.demo.ig_user_id, "replyflow.demo")
    stranger = world.server.issue_token("17841400000000777", "someone.else")
    comments = world.reader._http.get(
        "http://sandbox.test/v23.0/18000000000000001/comments",
        params={"fields": "id,text,timestamp,from,username"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert [c["id"] for c in comments["data"]] == ["17900000000000001"]
    assert comments["data"][0]["from"] == {"id": "7351928465012834", "username": "maya.creates"}
    refused = world.reader._http.get(
        "http://sandbox.test/v23.0/18000000000000001/comments",
        headers={"Authorization": f"Bearer {stranger}"},
    )
    assert refused.status_code >= 400
    assert refused.json()["error"]["code"] == 200
    unknown_field = world.reader._http.get(
        f"http://sandbox.test/v23.0/{world.demo.ig_user_id}/media",
        params={"fields": "id,secret"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert unknown_field.json()["error"]["code"] == 100


# The job ---------------------------------------------------------------------------------------


def test_a_comment_whose_webhook_never_came_gets_exactly_one_private_reply(world: World) -> None:
    world.comment("17900000000000011")
    result = world.run()
    assert result.counts["comments_fed"] == 1
    ((queue, body, _),) = world.queues.published
    assert queue == "events-default"
    event = EventMessage.from_json(body).event
    assert (event.kind, event.event_key, event.comment_id) == (
        "comment",
        "17900000000000011",
        "17900000000000011",
    )
    assert event.occurred_at == world.clock.now - 60
    world.deliver()
    assert [c["recipient"] for c in world.private_replies()] == [{"comment_id": "17900000000000011"}]

    # The job again, then the webhook arriving late: both are duplicates of what went out.
    again = world.run()
    assert again.counts["comments_fed"] == 0
    assert again.counts["comments_read"] == 1
    world.webhook("17900000000000011")
    world.deliver()
    assert len(world.private_replies()) == 1


def test_two_runs_before_the_processor_catches_up_still_send_once(world: World) -> None:
    world.comment("17900000000000021")
    assert world.run().counts["comments_fed"] == 1
    assert world.run().counts["comments_fed"] == 1  # not processed yet, so not seen yet
    world.webhook("17900000000000021")
    world.deliver()
    assert len(world.private_replies()) == 1
    with session_scope(world.deps.clients.writer_sessions) as session:
        rows = session.query(OutboundMessage).filter_by(comment_id="17900000000000021").all()
    assert len(rows) == 1


def test_a_comment_the_webhook_delivered_is_not_fed_again(world: World) -> None:
    world.comment("17900000000000031")
    world.webhook("17900000000000031")
    world.deliver()
    result = world.run()
    assert (result.counts["comments_read"], result.counts["comments_fed"]) == (1, 0)
    assert len(world.private_replies()) == 1


def test_old_own_and_live_comments_are_left_alone(world: World) -> None:
    world.comment("17900000000000041", age=8 * DAY, media_id="18000000000000041")  # post 8 days old
    # A fresh comment on a post older than the lookback: only the last 7 days' media are read.
    world.comment("17900000000000042", media_id="18000000000000042", age=8 * DAY)
    world.comment("17900000000000043", media_id="18000000000000042")
    world.comment("17900000000000044", from_id=world.demo.ig_user_id)  # the account's own comment
    world.comment("17900000000000045", media_id="18000000000000045", media_product_type="LIVE")
    result = world.run()
    fed = {EventMessage.from_json(body).event.event_key for _, body, _ in world.queues.published}
    assert fed == set()
    assert result.counts["comments_fed"] == 0


def test_accounts_without_an_active_comment_automation_are_not_read(world: World) -> None:
    world.comment("17900000000000051")
    with session_scope(world.deps.clients.writer_sessions) as session:
        for automation in session.query(Automation).filter_by(tenant_id=world.demo.tenant_id):
            automation.active = False
    result = world.run()
    assert result.counts["graph_calls"] == 0
    assert world.queues.published == []


def test_the_call_budget_stops_a_run_and_the_next_resumes_below_the_checkpoint(world: World) -> None:
    for n in range(4):  # four media, one comment each, the newest first
        world.comment(f"1790000000000006{n}", media_id=f"1800000000000006{n}", age=3600.0 * (4 - n))
    first = world.run(ReconcileLimits(max_calls=3))  # the media list + two media's comments
    assert first.counts["graph_calls"] == 3
    assert first.counts["stopped_budget_spent"] == 1
    fed = [EventMessage.from_json(b).event.event_key for _, b, _ in world.queues.published]
    assert fed == ["17900000000000063", "17900000000000062"]
    checkpoint = world.deps.clients.cache.get_json(checkpoint_key(world.demo.account_id))
    assert checkpoint is not None
    assert checkpoint["resume_below"]["id"] == "18000000000000062"

    second = world.run(ReconcileLimits(max_calls=3))
    fed = [EventMessage.from_json(b).event.event_key for _, b, _ in world.queues.published]
    assert fed[2:] == ["17900000000000061", "17900000000000060"]
    assert second.counts["accounts_complete"] == 1
    assert world.deps.clients.cache.get_json(checkpoint_key(world.demo.account_id)) is None
    world.deliver()
    assert len(world.private_replies()) == 4


def test_a_throttle_stops_the_account_and_pauses_it(world: World) -> None:
    world.comment("17900000000000071")
    world.server.app.state.faults.throttle_next = 1
    world.server.app.state.faults.throttle_seconds = 1800
    first = world.run()
    assert first.counts["stopped_throttled"] == 1
    assert first.counts["graph_calls"] == 1
    checkpoint = world.deps.clients.cache.get_json(checkpoint_key(world.demo.account_id))
    assert checkpoint is not None
    assert checkpoint["paused_until"] == pytest.approx(world.clock.now + 1800, abs=1)
    paused = world.run()
    assert (paused.counts["accounts_paused"], paused.counts["graph_calls"]) == (1, 0)
    world.clock.advance(1801)
    after = world.run()
    assert after.counts["comments_fed"] == 1


class ScriptedReader:
    """A CommentReader that answers from a script: media pages, then comment pages, or raises."""

    def __init__(self, answers: Sequence[GraphPage | GraphCallError]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def _next(self) -> GraphPage:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, GraphCallError):
            raise answer
        return answer

    def recent_media(
        self, access_token: str, ig_user_id: str, *, since: int, until: int | None, after: str | None
    ) -> GraphPage:
        return self._next()

    def media_comments(self, access_token: str, media_id: str, *, after: str | None) -> GraphPage:
        return self._next()


def test_high_usage_headers_stop_reading_an_account(world: World) -> None:
    stamp = datetime.fromtimestamp(world.clock.now - 60, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
    media = GraphPage(
        [{"id": "18000000000000081", "timestamp": stamp}, {"id": "18000000000000082", "timestamp": stamp}]
    )
    comment = {
        "id": "17900000000000081",
        "timestamp": stamp,
        "text": "LINK",
        "from": {"id": "7351928465012834"},
    }
    reader = ScriptedReader([media, GraphPage([comment], usage_pct=80)])
    result = world.run(reader=reader)
    assert reader.calls == 2
    assert result.counts["stopped_usage_high"] == 1
    assert result.counts["comments_fed"] == 0  # the page that reported 80 % is not trusted further
    checkpoint = world.deps.clients.cache.get_json(checkpoint_key(world.demo.account_id))
    assert checkpoint is not None
    assert checkpoint["paused_until"] > world.clock.now


def test_an_app_wide_throttle_ends_the_run(world: World) -> None:
    with session_scope(world.deps.clients.writer_sessions) as session:
        seed_tenant(
            session,
            world.deps.clients.cipher,
            automations=[{"actions": {"private_reply": {"template_text": "hi"}}}],
        )
    reader = ScriptedReader([GraphCallError("app limit", graph_code=4, transient=True, retry_after=600)])
    result = world.run(reader=reader)
    assert result.counts["stopped_throttled"] == 1
    assert result.stopped_early is True
    assert reader.calls == 1  # the second account is not read


class RecordingPauses:
    """The send limiter's pauses, in memory."""

    def __init__(self, paused: dict[str, float] | None = None) -> None:
        self.paused = dict(paused or {})
        self.paused_all: list[float] = []

    def paused_seconds(self, account_id: str) -> float:
        return self.paused.get(account_id, 0.0)

    def pause(self, account_id: str, seconds: float) -> None:
        self.paused[account_id] = seconds

    def pause_all(self, seconds: float) -> None:
        self.paused_all.append(seconds)


def test_reads_and_sends_share_one_budget(world: World) -> None:
    world.comment("17900000000000091")
    sends_paused = RecordingPauses({world.demo.account_id: 120.0})
    skipped = world.run(pauses=sends_paused)
    assert (skipped.counts["accounts_paused_by_sends"], skipped.counts["graph_calls"]) == (1, 0)

    pauses = RecordingPauses()
    world.server.app.state.faults.throttle_next = 1
    world.server.app.state.faults.throttle_seconds = 1800
    throttled = world.run(pauses=pauses)
    assert throttled.counts["stopped_throttled"] == 1
    assert pauses.paused[world.demo.account_id] == pytest.approx(1800, abs=60)

    app_pauses = RecordingPauses()
    reader = ScriptedReader([GraphCallError("app limit", graph_code=4, transient=True, retry_after=600)])
    world.deps.clients.cache.delete(checkpoint_key(world.demo.account_id))
    world.run(reader=reader, pauses=app_pauses)
    assert app_pauses.paused_all == [900.0]
