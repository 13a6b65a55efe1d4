"""Webhook parsing (every sample payload in events/instagram/), signature, handshake, routing and the
handler's HTTP contract. No sockets: the queue is in memory and the route cache is fakeredis."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import SecretStr

from replyflow.domain.messages import EventMessage
from replyflow.domain.webhook_events import drop_reason, epoch_seconds, parse_body
from replyflow.errors import SignatureError, UnauthorizedError
from replyflow.services import cache_keys
from replyflow.services.intake import AccountRoute, RouteResolver, sign, verify_handshake, verify_signature
from replyflow.settings import Settings
from replyflow.wiring.core import Clients
from replyflow.wiring.pipeline import PipelineDeps, build_pipeline
from tests.conftest import REFERENCE_EVENTS_DIR, ROOT, load_event
from tests.support_pipeline import SECRET, DictCache, MemoryQueues, comment_body, lambda_context, webhook_post
from webhook.handler import make_handler

ACCOUNT = "17841400000000001"

# Reference payload -> (kind, routed?, drop reason)
EXPECTED = {
    "comment_feed.json": ("comment", None),
    "comment_reply.json": ("comment", None),
    "live_comment.json": ("live_comment", None),
    "dm_text.json": ("message", None),
    "dm_quick_reply.json": ("quick_reply", None),
    "dm_postback.json": ("postback", None),
    "dm_story_mention.json": ("story_mention", None),
    "dm_story_reply.json": ("story_reply", None),
    "dm_echo.json": ("echo", "echo"),
    "dm_reaction.json": ("reaction", "ignored_reaction"),
}


def test_every_reference_payload_is_covered() -> None:
    assert {p.name for p in REFERENCE_EVENTS_DIR.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_reference_payloads_parse_to_one_event_each(name: str, expected: tuple[str, str | None]) -> None:
    kind, reason = expected
    result = parse_body(load_event(name))
    assert not result.skipped
    assert [e.kind for e in result.events] == [kind]
    event = result.events[0]
    assert event.ig_account_id == ACCOUNT
    assert event.event_key
    assert drop_reason(event) == reason
    # Seconds and milliseconds normalise to the same era (2026).
    assert event.occurred_at is not None
    assert 1.7e9 < event.occurred_at < 1.9e9


def test_reference_details_are_read() -> None:
    reply = parse_body(load_event("comment_reply.json")).events[0]
    assert reply.parent_id == "17958213400876543"
    assert reply.sender_username == "jordan_fit"
    qr = parse_body(load_event("dm_quick_reply.json")).events[0]
    assert qr.payload == "SEND_LINK"
    assert qr.text == "Send link"
    pb = parse_body(load_event("dm_postback.json")).events[0]
    assert pb.payload == "GET_GUIDE"
    assert pb.event_key
    assert pb.event_key.startswith("aWdf")
    story = parse_body(load_event("dm_story_reply.json")).events[0]
    assert story.story_id == "18061234509876543"
    live = parse_body(load_event("live_comment.json")).events[0]
    assert live.media_product_type == "LIVE"
    assert live.comment_id == "17849203715562091"
    feed = parse_body(load_event("comment_feed.json")).events[0]
    assert feed.occurred_at == 1795788312.0  # entry.time stands for the comment time


def test_seconds_and_milliseconds() -> None:
    assert epoch_seconds(1795788312) == epoch_seconds(1795788312000) == 1795788312.0
    assert epoch_seconds(None) is None


def test_every_entry_and_every_change_is_read_and_bad_items_do_not_drop_neighbours() -> None:
    body = {
        "object": "instagram",
        "entry": [
            {
                "id": ACCOUNT,
                "time": 1795788312,
                "changes": [
                    {"field": "comments", "value": {"id": "1", "text": "a", "from": {"id": "9"}}},
                    {"field": "feed", "value": {"x": 1}},
                    {"nofield": True},
                    {"field": "comments", "value": {"comment_id": "2", "text": "b", "from": {"id": "9"}}},
                ],
                "messaging": [{"sender": {"id": "9"}, "recipient": {"id": ACCOUNT}, "weird": {}}],
            },
            {
                "id": "17841400000000002",
                "time": 1795788312,
                "changes": [{"field": "comments", "value": {"id": "3"}}],
            },
            "garbage",
        ],
    }
    result = parse_body(body)
    assert [e.comment_id for e in result.events] == ["1", "2", "3"]  # value.comment_id fallback
    assert result.skipped == {"unknown_field": 1, "malformed": 3}


def test_the_documented_array_form_with_field_on_the_entry() -> None:
    body = [{"id": ACCOUNT, "time": 1795788312, "field": "comments", "value": {"id": "5", "text": "LINK"}}]
    events = parse_body(body).events
    assert [(e.kind, e.comment_id) for e in events] == [("comment", "5")]


def test_dashboard_test_payloads_self_comments_and_standby_are_dropped() -> None:
    test_comment = comment_body("0", "17865799348089039", "This is an example.", from_id="232323232")
    assert drop_reason(parse_body(test_comment).events[0]) == "test_payload"
    messages_test = {
        "entry": [
            {
                "id": "0",
                "time": 1,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "sender": {"id": "1"},
                            "recipient": {"id": "0"},
                            "message": {"mid": "m", "text": "hi"},
                        },
                    }
                ],
            }
        ]
    }
    assert drop_reason(parse_body(messages_test).events[0]) == "test_payload"
    own = comment_body(ACCOUNT, "77", "thanks!", from_id=ACCOUNT)
    assert drop_reason(parse_body(own).events[0]) == "self_comment"
    standby = load_event("dm_text.json")
    standby["entry"][0]["standby"] = standby["entry"][0].pop("messaging")
    assert drop_reason(parse_body(standby).events[0]) == "standby"


def test_messaging_dispatch_order() -> None:
    def kind(message: dict) -> str:
        body = {
            "entry": [
                {"id": ACCOUNT, "messaging": [{"sender": {"id": "5"}, "timestamp": 1, "message": message}]}
            ]
        }
        return parse_body(body).events[0].kind

    assert kind({"mid": "m", "text": "x", "is_echo": True, "quick_reply": {"payload": "P"}}) == "echo"
    assert kind({"mid": "m", "is_deleted": True}) == "deleted"
    assert kind({"mid": "m", "is_unsupported": True}) == "unsupported"
    assert kind({"mid": "m", "attachments": [{"type": "image", "payload": {"url": "u"}}]}) == "message"
    assert kind({"mid": "m", "text": "hi", "reply_to": {"mid": "earlier"}}) == "message"
    read = {"entry": [{"id": ACCOUNT, "messaging": [{"sender": {"id": "5"}, "read": {"mid": "m"}}]}]}
    assert drop_reason(parse_body(read).events[0]) == "ignored_read"
    referral = {"entry": [{"id": ACCOUNT, "messaging": [{"sender": {"id": "5"}, "referral": {"ref": "r"}}]}]}
    assert parse_body(referral).events[0].kind == "referral"


# -- signature and handshake ---------------------------------------------------------------------


def test_signature_accepts_either_secret_and_rejects_the_rest() -> None:
    body = b'{"object":"instagram"}'
    assert verify_signature(body, sign(body, b"one"), [b"one", b"two"]) == 0
    assert verify_signature(body, sign(body, b"two"), [b"one", b"two"]) == 1
    for header in (None, "", "sha1=abc", sign(body, b"three"), sign(body + b" ", b"one")):
        with pytest.raises(SignatureError):
            verify_signature(body, header, [b"one", b"two"])
    with pytest.raises(SignatureError):
        verify_signature(body, sign(body, b""), [])  # no secret configured: fail closed


def test_a_bad_signature_is_the_one_typed_401() -> None:
    with pytest.raises(UnauthorizedError) as refused:
        verify_signature(b"{}", sign(b"{}", b"other"), [b"one"])
    assert (refused.value.code, refused.value.status) == ("invalid_signature", 401)


def test_handshake() -> None:
    ok = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    assert verify_handshake(ok, "tok") == "1158201444"
    assert verify_handshake({**ok, "hub.verify_token": "nope"}, "tok") is None
    assert verify_handshake({**ok, "hub.mode": "unsubscribe"}, "tok") is None


# -- routing -------------------------------------------------------------------------------------


def test_route_resolver_loads_once_then_serves_from_the_cache_including_unknown_accounts() -> None:
    calls: list[str] = []

    def loader(ig: str) -> AccountRoute | None:
        calls.append(ig)
        return AccountRoute("t1", "a1", "high", "active") if ig == "known" else None

    resolver = RouteResolver(DictCache(), loader)
    for _ in range(3):
        assert resolver.resolve("known") == AccountRoute("t1", "a1", "high", "active")
        assert resolver.resolve("stranger") is None
    assert calls == ["known", "stranger"]


# -- the handler ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookWorld:
    queues: MemoryQueues
    deps: PipelineDeps

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        return make_handler(lambda: self.deps)(event, lambda_context())


@pytest.fixture
def webhook() -> Iterator[WebhookWorld]:
    queues = MemoryQueues()

    def no_database(ig: str) -> AccountRoute | None:
        raise AssertionError(f"the warm webhook must not touch the database ({ig})")

    settings = Settings(environment="test", instagram_app_secret=SECRET.decode(), instagram_verify_token="vt")
    deps = build_pipeline(settings, publisher=queues, route_loader=no_database)
    cache = deps.clients.cache
    cache.set_json(
        cache_keys.account_route_key(ACCOUNT), AccountRoute("t1", "a1", "high", "active").to_json(), 60
    )
    cache.set_json(cache_keys.account_route_key("17841400000000009"), {"unknown": True}, 60)
    yield WebhookWorld(queues, deps)
    cache.delete(cache_keys.account_route_key(ACCOUNT), cache_keys.account_route_key("17841400000000009"))


def _get(webhook: WebhookWorld, params: dict[str, str]) -> dict[str, Any]:
    return webhook.invoke({"httpMethod": "GET", "queryStringParameters": params, "headers": {}})


def test_handler_handshake(webhook: WebhookWorld) -> None:
    ok = _get(webhook, {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "42"})
    assert (ok["statusCode"], ok["body"]) == (200, "42")
    refused = _get(webhook, {"hub.mode": "subscribe", "hub.verify_token": "bad", "hub.challenge": "42"})
    assert refused["statusCode"] == 403
    assert json.loads(refused["body"])["error"]["code"] == "forbidden"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_handler_routes_reference_payloads_to_the_priority_queue(webhook: WebhookWorld, name: str) -> None:
    response = webhook.invoke(webhook_post(load_event(name)))
    assert response["statusCode"] == 200
    routed = EXPECTED[name][1] is None
    assert webhook.queues.pending("events-high") == (1 if routed else 0)
    if routed:
        ((_, body),) = webhook.queues.take("events-high")
        message = EventMessage.from_json(body)
        assert (message.tenant_id, message.account_id, message.priority) == ("t1", "a1", "high")


def test_handler_base64_body_bad_signature_and_bad_json(webhook: WebhookWorld) -> None:
    assert webhook.invoke(webhook_post(load_event("comment_feed.json"), b64=True))["statusCode"] == 200
    assert webhook.queues.pending() == 1
    bad = webhook.invoke(webhook_post(load_event("comment_feed.json"), secret=b"nope"))
    assert bad["statusCode"] == 401
    assert set(json.loads(bad["body"])["error"]) == {"code", "message", "details"}
    missing = webhook_post(load_event("comment_feed.json"))
    del missing["headers"]["X-Hub-Signature-256"]
    assert webhook.invoke(missing)["statusCode"] == 401
    assert webhook.queues.pending() == 1  # nothing more enqueued
    assert webhook.invoke(webhook_post(b"{not json"))["statusCode"] == 400


@pytest.mark.parametrize("body", ["abc", "eyJvYmplY3QiOiAiaW5zdGFncmFtIn0=!", "not base64 at all"])
def test_handler_body_flagged_base64_that_is_not_is_400(webhook: WebhookWorld, body: str) -> None:
    event = webhook_post(load_event("comment_feed.json"))
    event.update(body=body, isBase64Encoded=True)
    response = webhook.invoke(event)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "bad_request"
    assert webhook.queues.pending() == 0


def test_handler_unknown_accounts_are_200_and_not_enqueued(webhook: WebhookWorld) -> None:
    response = webhook.invoke(webhook_post(comment_body("17841400000000009", "1")))
    assert response["statusCode"] == 200
    assert webhook.queues.pending() == 0


def test_handler_batches_many_events(webhook: WebhookWorld) -> None:
    body = comment_body(ACCOUNT, "1")
    change = body["entry"][0]["changes"][0]
    body["entry"][0]["changes"] = [
        {**change, "value": {**change["value"], "id": str(1000 + i)}} for i in range(25)
    ]
    assert webhook.invoke(webhook_post(body))["statusCode"] == 200
    assert webhook.queues.pending("events-high") == 25


@pytest.mark.parametrize(
    "invoke",
    [
        "",
        # The first invocation builds the PipelineDeps: its processor, sender and Graph client stay unbuilt.
        "webhook.handler.lambda_handler({'httpMethod': 'GET', 'queryStringParameters': {}}, "
        "LambdaContext('WebhookFunction', 512, 3)); ",
    ],
    ids=["import", "first-invocation"],
)
def test_the_webhook_imports_no_sqlalchemy_and_no_api(invoke: str) -> None:
    code = (
        "import sys, webhook.handler; from local.lambda_context import LambdaContext; "
        + invoke
        + "bad = [m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'api', 'boto3', 'httpx')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env_path = f"{ROOT / 'layers' / 'shared'}:{ROOT / 'functions'}:{ROOT}"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": env_path},
        capture_output=True,
        text=True,
        cwd=Path(ROOT),
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "body",
    [
        b'{"object": "instagram", "entry": [{"id": "1", "time": NaN, "changes": []}]}',
        b'{"object": "instagram", "entry": [{"id": "1", "time": Infinity, "changes": []}]}',
        b'{"object": "instagram", "entry": [{"id": "1", "time": ' + b"9" * 5000 + b', "changes": []}]}',
        b'{"object": "instagram", "entry": [' + b"[" * 10_000 + b"]" * 10_000 + b"]}",
        b'{"object": "instagram", "entry": [{"id": "\xff\xfe", "changes": []}]}',
    ],
)
def test_signed_bodies_the_decoder_refuses_are_400_and_never_enqueued(
    webhook: WebhookWorld, body: bytes
) -> None:
    # Invalid UTF-8 arrives base64-encoded, as API Gateway hands over such bytes.
    response = webhook.invoke(webhook_post(body, b64=True))
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "malformed_json"
    assert webhook.queues.pending() == 0


def test_the_reference_comment_with_a_nan_never_reaches_a_queue(webhook: WebhookWorld) -> None:
    raw = json.dumps(load_event("comment_feed.json")).replace('"time": ', '"time": NaN, "_t": ', 1)
    assert "NaN" in raw
    response = webhook.invoke(webhook_post(raw.encode()))
    assert response["statusCode"] == 400
    assert webhook.queues.pending() == 0


def test_the_handler_accepts_the_meta_app_secret_too_and_logs_which_secret_signed(
    webhook: WebhookWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webhook.handler as handler_module

    logged: list[dict[str, Any]] = []
    monkeypatch.setattr(handler_module.logger, "debug", lambda _msg, extra: logged.append(extra))
    settings = webhook.deps.settings.model_copy(
        update={"meta_app_secret": SecretStr("meta-app-secret-value")}
    )
    deps = build_pipeline(
        settings,
        clients=Clients(settings),  # the clients read the app secrets from their settings
        publisher=webhook.queues,
        route_loader=webhook.deps.route_loader,
    )
    invoke = make_handler(lambda: deps)
    body = comment_body(ACCOUNT, "17900000000000777")
    signed_by_meta = invoke(webhook_post(body, b"meta-app-secret-value"), lambda_context())
    assert signed_by_meta["statusCode"] == 200
    assert webhook.queues.pending("events-high") == 1
    assert logged == [{"signed_with": "meta_app_secret"}]
    invoke(webhook_post(comment_body(ACCOUNT, "17900000000000778")), lambda_context())
    assert logged[-1] == {"signed_with": "instagram_app_secret"}
    forged = invoke(webhook_post(body, b"neither-secret"), lambda_context())
    assert forged["statusCode"] == 401


# -- secrets read at run time (Secrets Manager), rotated without a redeploy -----------------------


@pytest.mark.parametrize("root", ["pipeline", "lambda"])
def test_the_webhook_reads_its_secrets_at_run_time_and_follows_a_rotation(root: str) -> None:
    import base64
    import os

    import boto3
    from moto import mock_aws

    def document(app_secret: str, verify_token: str) -> str:
        return json.dumps(
            {
                "INSTAGRAM_APP_SECRET": app_secret,
                "INSTAGRAM_VERIFY_TOKEN": verify_token,
                "TOKEN_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                "JWT_SIGNING_KEYS": json.dumps({"k1": os.urandom(24).hex()}),
                "JWT_ACTIVE_KID": "k1",
            }
        )

    old_secret, new_secret = os.urandom(16).hex(), os.urandom(16).hex()
    old_token, new_token = os.urandom(16).hex(), os.urandom(16).hex()
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        arn = sm.create_secret(Name="replyflow/test/app", SecretString=document(old_secret, old_token))["ARN"]
        # The settings hold the secret's ARN, not its values (the local defaults stay unused).
        settings = Settings(environment="test", app_secrets_arn=arn)
        queues = MemoryQueues()
        full = build_pipeline(settings, publisher=queues, route_loader=lambda ig: None)
        deps: Any = full
        if root == "lambda":  # the pydantic-free root over the settings view
            from replyflow.settings_view import WebhookSettings
            from replyflow.wiring.webhook import WebhookDeps

            deps = WebhookDeps(WebhookSettings(environment="test", app_secrets_arn=arn), lambda: full)
            deps.__dict__["publisher"] = queues  # what the ``once`` attribute would hold (no SQS here)
        cache = full.clients.cache
        cache.set_json(
            cache_keys.account_route_key(ACCOUNT), AccountRoute("t1", "a1", "high", "active").to_json(), 60
        )
        world = WebhookWorld(queues, deps)
        try:
            hello = {"hub.mode": "subscribe", "hub.verify_token": old_token, "hub.challenge": "7"}
            assert _get(world, hello)["statusCode"] == 200
            body = comment_body(ACCOUNT, "17900000000000901")
            assert world.invoke(webhook_post(body, old_secret.encode()))["statusCode"] == 200

            sm.put_secret_value(SecretId=arn, SecretString=document(new_secret, new_token))
            # The cached values do not match: the function re-reads the secret once and accepts.
            rotated = comment_body(ACCOUNT, "17900000000000902")
            assert world.invoke(webhook_post(rotated, new_secret.encode()))["statusCode"] == 200
            assert _get(world, {**hello, "hub.verify_token": new_token})["statusCode"] == 200
            assert queues.pending("events-high") == 2
            # Neither the old secret nor the unused local default passes; re-reads are rate-limited.
            local_default = Settings.model_fields["instagram_app_secret"].default.get_secret_value()
            for forged in (old_secret, local_default):
                assert world.invoke(webhook_post(body, forged.encode()))["statusCode"] == 401
            assert deps.app_secrets.loads == 2
        finally:
            cache.delete(cache_keys.account_route_key(ACCOUNT))


# -- the Lambda root: the settings view, no pydantic ------------------------------------------------


def test_the_lambda_root_serves_from_the_view_and_asks_the_full_root_only_on_a_miss(
    webhook: WebhookWorld,
) -> None:
    from replyflow.settings_view import WebhookSettings
    from replyflow.wiring.webhook import WebhookDeps

    asked: list[str] = []
    verified: list[bytes] = []

    class Verifier:
        def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
            verified.append(payload)
            return {"id": "evt_1"}

    def loader(ig_user_id: str) -> AccountRoute | None:
        asked.append(ig_user_id)
        return None

    full = build_pipeline(
        Settings(environment="test"),
        publisher=webhook.queues,
        route_loader=loader,
        billing_api=cast(Any, Verifier()),
    )
    view = WebhookSettings.from_environ(
        {"ENVIRONMENT": "test", "INSTAGRAM_APP_SECRET": SECRET.decode(), "INSTAGRAM_VERIFY_TOKEN": "vt"}
    )
    deps = WebhookDeps(view, lambda: full)
    deps.__dict__["publisher"] = webhook.queues  # what the ``once`` attribute would hold (no SQS here)
    invoke = make_handler(lambda: deps)
    hello = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "9"}
    shake = invoke({"httpMethod": "GET", "queryStringParameters": hello, "headers": {}}, lambda_context())
    assert shake["body"] == "9"
    assert (
        invoke(webhook_post(comment_body(ACCOUNT, "17900000000000601")), lambda_context())["statusCode"]
        == 200
    )
    assert webhook.queues.pending("events-high") == 1
    assert asked == []
    stranger = "17841400000000077"
    try:
        assert (
            invoke(webhook_post(comment_body(stranger, "17900000000000602")), lambda_context())["statusCode"]
            == 200
        )
        assert asked == [stranger]
    finally:
        deps.cache.delete(cache_keys.account_route_key(stranger))
    assert invoke(webhook_post(comment_body(ACCOUNT, "1"), b"forged"), lambda_context())["statusCode"] == 401
    assert deps.billing_api.verify_event(b"{}", "sig") == {"id": "evt_1"}
    assert verified == [b"{}"]


def test_a_deployed_stack_with_its_secrets_in_the_environment_is_vetted_by_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from replyflow.settings import get_settings
    from replyflow.wiring.pipeline import process_deps
    from replyflow.wiring.webhook import webhook_deps

    monkeypatch.setenv("ENVIRONMENT", "prod")
    caches = (get_settings, process_deps, webhook_deps)
    for cached in caches:
        cached.cache_clear()
    try:
        with pytest.raises(ValidationError, match="INSTAGRAM_APP_SECRET must be set"):
            webhook_deps()
    finally:
        for cached in caches:
            cached.cache_clear()
