"""``POST /v1/accounts/{account_id}/test-comments`` (``services.sandbox_tools``) through the in-process
gateway: off without ``SANDBOX_TOOLS``, tenant-scoped, admin and up, a validated body, and on success
one comment registered with the sandbox (a fake port) and one event through the webhook's intake,
which the processor then decides like a delivered comment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from replyflow.db.engine import session_scope
from replyflow.db.models import AutomationLog
from replyflow.domain.messages import EventMessage
from replyflow.errors import SandboxUnavailableError
from replyflow.ports import SandboxComment
from replyflow.settings import Settings
from replyflow.wiring.pipeline import build_pipeline
from tests.support_pipeline import FakeLimiter, MemoryQueues, ScriptedGraph
from tests.unit.test_api_resources import setup_automation
from tests.unit.test_api_support import ApiEnv, make_env


@dataclass
class FakeSandbox:
    registered: list[SandboxComment] = field(default_factory=list)
    down: bool = False

    def register(self, comment: SandboxComment) -> None:
        if self.down:
            raise SandboxUnavailableError("the Instagram sandbox did not answer")
        self.registered.append(comment)


@dataclass
class World:
    env: ApiEnv
    sandbox: FakeSandbox
    queues: MemoryQueues

    def send(self, token: str, account_id: str, body: object) -> tuple[int, dict]:
        response = self.env.call("POST", f"/v1/accounts/{account_id}/test-comments", token=token, body=body)
        return response.status, response.body


def _world(env: ApiEnv) -> World:
    world = World(env, FakeSandbox(), MemoryQueues())
    env.use(sandbox_comments=world.sandbox, publisher=world.queues)
    return world


@pytest.fixture
def on(sqlite_url: str) -> Iterator[World]:
    for env in make_env(sqlite_url, sandbox_tools=True):
        yield _world(env)


@pytest.fixture
def off(sqlite_url: str) -> Iterator[World]:
    for env in make_env(sqlite_url):
        yield _world(env)


def test_without_sandbox_tools_the_route_is_a_404_and_accounts_say_no_sandbox(off: World) -> None:
    token = off.env.signup()["access_token"]
    account, _template, _automation = setup_automation(off.env, token)
    status, body = off.send(token, account["id"], {"text": "LINK"})
    assert status == 404
    assert body["error"]["code"] == "sandbox_tools_disabled"
    assert "SANDBOX_TOOLS" in body["error"]["message"]
    assert off.sandbox.registered == []
    assert off.queues.published == []
    listed = off.env.call("GET", "/v1/accounts", token=token).body
    assert [a["sandbox"] for a in listed] == [False]


def test_a_test_comment_is_registered_and_goes_through_intake_to_the_processor(on: World) -> None:
    token = on.env.signup()["access_token"]
    account, _template, automation = setup_automation(on.env, token)
    assert [a["sandbox"] for a in on.env.call("GET", "/v1/accounts", token=token).body] == [True]

    status, sent = on.send(token, account["id"], {"text": "send me the LINK please", "username": "ann.b"})
    assert status == 202, sent
    assert sent["enqueued"] == 1
    assert sent["dropped"] == {}
    assert sent["account_id"] == account["id"]
    assert sent["ig_user_id"] == account["ig_user_id"]
    assert sent["username"] == "ann.b"
    assert sent["text"] == "send me the LINK please"
    (registered,) = on.sandbox.registered
    assert (registered.comment_id, registered.account_id) == (sent["comment_id"], account["ig_user_id"])
    assert registered.media_id == sent["media_id"]
    (published,) = on.queues.published
    queue, message_json, _delay = published
    assert queue.startswith("events-")  # the plan's priority queue, as the webhook routes it
    message = EventMessage.from_json(message_json)
    assert message.account_id == account["id"]
    assert message.event.is_comment
    assert message.event.event_key
    assert sent["comment_id"] in message.event.event_key

    settings = Settings(environment="test", database_url=on.env.settings.database_url)
    pipeline = build_pipeline(
        settings,
        clients=on.env.deps.clients,
        publisher=MemoryQueues(),
        graph=ScriptedGraph(),
        limiter=FakeLimiter(),
    )
    pipeline.processor.process(message)
    with session_scope(on.env.deps.clients.writer_sessions) as session:
        logged = session.scalars(select(AutomationLog.automation_id)).all()
    assert automation["id"] in logged


def test_another_workspaces_account_is_not_found(on: World) -> None:
    owner = on.env.signup("Acme")["access_token"]
    account, _t, _a = setup_automation(on.env, owner)
    stranger = on.env.signup("Other")["access_token"]
    status, body = on.send(stranger, account["id"], {"text": "LINK"})
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = on.send(owner, "no-such-account", {"text": "LINK"})
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert on.sandbox.registered == []
    assert on.queues.published == []


def test_a_member_may_not_send_one(on: World) -> None:
    owner = on.env.signup()["access_token"]
    account, _t, _a = setup_automation(on.env, owner)
    member = on.env.invite_and_accept(owner, "viewer@example.com", "member")["access_token"]
    status, body = on.send(member, account["id"], {"text": "LINK"})
    assert (status, body["error"]["code"]) == (403, "insufficient_role")
    assert on.sandbox.registered == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": ""},
        {"text": "   "},
        {"text": "x" * 2201},
        {"text": "LINK", "username": "no spaces allowed"},
        {"text": "LINK", "from_id": "abc"},
        {"text": "LINK", "media_id": "../x"},
        {"text": "LINK", "extra": 1},
        {"text": 5},
    ],
)
def test_a_bad_body_is_a_422(on: World, body: object) -> None:
    owner = on.env.signup()["access_token"]
    account, _t, _a = setup_automation(on.env, owner)
    status, answer = on.send(owner, account["id"], body)
    assert status == 422, answer
    assert answer["error"]["code"] == "validation_error"
    assert on.sandbox.registered == []


def test_the_longest_comment_is_accepted_and_a_sandbox_that_is_down_is_a_502(on: World) -> None:
    owner = on.env.signup()["access_token"]
    account, _t, _a = setup_automation(on.env, owner)
    status, sent = on.send(owner, account["id"], {"text": "x" * 2200})
    assert status == 202, sent
    on.sandbox.down = True
    status, body = on.send(owner, account["id"], {"text": "LINK"})
    assert (status, body["error"]["code"]) == (502, "sandbox_unavailable")
    assert len(on.queues.published) == 1  # nothing enqueued for the comment the sandbox never took


def test_a_disconnected_account_is_a_409(on: World) -> None:
    owner = on.env.signup()["access_token"]
    account, _t, _a = setup_automation(on.env, owner)
    assert on.env.call("DELETE", f"/v1/accounts/{account['id']}", token=owner).status == 200
    status, body = on.send(owner, account["id"], {"text": "LINK"})
    assert (status, body["error"]["code"]) == (409, "account_disconnected")


def test_the_settings_refuse_sandbox_tools_on_a_deployed_stack() -> None:
    with pytest.raises(ValueError, match="SANDBOX_TOOLS"):
        Settings(environment="prod", sandbox_tools=True, app_secrets_arn="arn:aws:secretsmanager:x")
