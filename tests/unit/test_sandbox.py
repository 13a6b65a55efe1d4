"""The Instagram sandbox: Send API rules, rate limits, faults, OAuth and the control surface.

Every test calls the in-process app (``server.app.handle``) with a fake clock; what only a socket
can show (latency, dropped connections, redirects) is in ``tests/integration/test_sandbox_http.py``.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from local.sandbox import Request, Response, SandboxServer

APP_ID = "1234567890"
APP_SECRET = "sandbox-secret"
ACCOUNT = "17841400000000001"
OTHER_ACCOUNT = "17841400000000002"
USER = "7351928465012834"
DAY = 24 * 3600.0
USAGE_HEADER = "X-Business-Use-Case-Usage"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> SandboxServer:
    return SandboxServer(port=0, app_id=APP_ID, app_secret=APP_SECRET, clock=clock, seed=7)


@pytest.fixture
def token(server: SandboxServer) -> str:
    return server.issue_token(ACCOUNT, "demo_shop")


def call(
    server: SandboxServer,
    method: str,
    path: str,
    *,
    body: Any = None,
    form: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    token: str | None = None,
) -> Response:
    headers: dict[str, str] = {}
    raw = b""
    if body is not None:
        raw, headers["content-type"] = json.dumps(body).encode(), "application/json"
    if form is not None:
        raw, headers["content-type"] = urlencode(form).encode(), "application/x-www-form-urlencoded"
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return server.app.handle(Request(method, path, params or {}, headers, raw))


def send(
    server: SandboxServer,
    token: str | None,
    recipient: dict[str, str],
    message: dict[str, Any] | None = None,
    *,
    node: str = ACCOUNT,
    **extra: Any,
) -> Response:
    body = {"recipient": recipient, "message": message or {"text": "Here you go"}, **extra}
    return call(server, "POST", f"/v23.0/{node}/messages", body=body, token=token)


def error_of(response: Response) -> tuple[int, int | None]:
    error = response.body["error"]
    assert error["type"] == "OAuthException"
    assert error["fbtrace_id"]
    return error["code"], error.get("error_subcode")


def control(server: SandboxServer, method: str, path: str, body: Any = None, **params: str) -> Response:
    return call(server, method, f"/_sandbox/{path}", body=body, params=params)


def register_comment(server: SandboxServer, comment_id: str, **fields: Any) -> None:
    payload = {
        "id": comment_id,
        "media_id": "18034567890123456",
        "from_id": USER,
        "username": "fan",
        **fields,
    }
    assert control(server, "POST", "comments", payload).status == 200


def listing(server: SandboxServer, **params: str) -> dict[str, Any]:
    return control(server, "GET", "messages", **params).body


def usage(response: Response | httpx.Response, account: str = ACCOUNT) -> dict[str, Any]:
    header = response.headers[USAGE_HEADER]
    return json.loads(header)[account][0]


class TestPrivateReplies:
    def test_accepted_reply_goes_to_the_commenter_and_is_listed(self, server, token):
        register_comment(server, "c1")

        response = send(server, token, {"comment_id": "c1"})

        assert response.status == 200
        assert response.body["recipient_id"] == USER
        assert response.body["message_id"].startswith("aWdf")
        [record] = listing(server)["messages"]
        assert record["kind"] == "private_reply"
        assert record["recipient"] == {"comment_id": "c1"}
        assert record["message_id"] == response.body["message_id"]

    def test_only_one_private_reply_per_comment(self, server, token):
        assert send(server, token, {"comment_id": "c1"}).status == 200

        second = send(server, token, {"comment_id": "c1"})

        assert second.status == 400
        assert error_of(second) == (100, 2534001)
        assert "already been sent" in second.body["error"]["message"]
        assert [r["error"]["code"] for r in listing(server)["rejected"]] == [100]

    @pytest.mark.parametrize(
        ("age", "allowed"), [(7 * DAY - 60, True), (7 * DAY + 60, False)], ids=["inside", "outside"]
    )
    def test_seven_day_window(self, server, token, clock, age, allowed):
        register_comment(server, "c1", timestamp=clock.now - age)

        response = send(server, token, {"comment_id": "c1"})

        assert (response.status == 200) is allowed
        if not allowed:
            assert error_of(response) == (10, 2018278)
            assert (
                response.body["error"]["message"] == "(#10) This message is sent outside of allowed window."
            )

    def test_unknown_comment_counts_as_created_on_first_sight(self, server, token, clock):
        assert send(server, token, {"comment_id": "new"}).status == 200
        server.app.state.replied.clear()
        clock.advance(7 * DAY + 1)

        assert error_of(send(server, token, {"comment_id": "new"})) == (10, 2018278)

    def test_iso_timestamp_is_accepted(self, server, token, clock):
        old = datetime.fromtimestamp(clock.now - 8 * DAY, UTC).isoformat()
        register_comment(server, "c1", timestamp=old)

        assert error_of(send(server, token, {"comment_id": "c1"})) == (10, 2018278)

    def test_commenter_unavailable(self, server, token):
        register_comment(server, "c1")
        control(server, "POST", f"users/{USER}/unavailable")

        assert error_of(send(server, token, {"comment_id": "c1"})) == (551, 1545041)


class TestDirectMessages:
    def test_needs_the_users_message_within_24_hours(self, server, token, clock):
        assert error_of(send(server, token, {"id": USER})) == (10, 2018278)

        control(server, "POST", "inbound", {"account_id": ACCOUNT, "sender_id": USER})
        assert send(server, token, {"id": USER}).body["recipient_id"] == USER

        clock.advance(DAY + 1)
        assert error_of(send(server, token, {"id": USER})) == (10, 2018278)

    def test_inbound_timestamp_in_milliseconds(self, server, token, clock):
        stale_ms = int((clock.now - DAY - 60) * 1000)
        control(server, "POST", "inbound", {"account_id": ACCOUNT, "sender_id": USER, "timestamp": stale_ms})

        assert error_of(send(server, token, {"id": USER})) == (10, 2018278)

    def test_human_agent_tag_extends_the_window(self, server, token, clock):
        control(server, "POST", "inbound", {"account_id": ACCOUNT, "sender_id": USER})
        clock.advance(3 * DAY)

        response = send(server, token, {"id": USER}, messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")

        assert response.status == 200

    def test_private_reply_does_not_open_the_window(self, server, token):
        register_comment(server, "c1")
        assert send(server, token, {"comment_id": "c1"}).status == 200

        assert error_of(send(server, token, {"id": USER})) == (10, 2018278)

    def test_window_is_per_account(self, server, token):
        control(server, "POST", "inbound", {"account_id": OTHER_ACCOUNT, "sender_id": USER})

        assert error_of(send(server, token, {"id": USER})) == (10, 2018278)

    def test_unavailable_user(self, server, token):
        control(server, "POST", "inbound", {"account_id": ACCOUNT, "sender_id": USER})
        control(server, "POST", f"users/{USER}/unavailable")

        assert error_of(send(server, token, {"id": USER})) == (551, 1545041)

        control(server, "DELETE", f"users/{USER}/unavailable")
        assert send(server, token, {"id": USER}).status == 200

    def test_form_encoded_body(self, server, token):
        control(server, "POST", "inbound", {"account_id": ACCOUNT, "sender_id": USER})
        form = {"recipient": json.dumps({"id": USER}), "message": json.dumps({"text": "hi"})}

        response = call(server, "POST", f"/v23.0/{ACCOUNT}/messages", form=form, token=token)

        assert response.status == 200


class TestMessageShape:
    def test_text_limit_is_bytes_not_characters(self, server, token):
        register_comment(server, "fits")
        register_comment(server, "over")

        assert send(server, token, {"comment_id": "fits"}, {"text": "é" * 500}).status == 200
        over = send(server, token, {"comment_id": "over"}, {"text": "😀" * 251})

        assert error_of(over) == (100, None)
        assert "1000" in over.body["error"]["message"]

    @pytest.mark.parametrize(
        "body",
        [
            {"message": {"text": "hi"}},
            {"recipient": {"comment_id": "c1"}},
            {"recipient": {"comment_id": "c1"}, "message": {}},
            {"recipient": {"comment_id": "c1", "id": USER}, "message": {"text": "hi"}},
            {
                "recipient": {"comment_id": "c1"},
                "message": {
                    "text": "pick",
                    "quick_replies": [
                        {"content_type": "text", "title": f"q{i}", "payload": "p"} for i in range(14)
                    ],
                },
            },
            {
                "recipient": {"comment_id": "c1"},
                "message": {
                    "attachment": {
                        "type": "template",
                        "payload": {
                            "template_type": "button",
                            "text": "pick",
                            "buttons": [
                                {"type": "postback", "title": f"b{i}", "payload": "p"} for i in range(4)
                            ],
                        },
                    }
                },
            },
        ],
        ids=[
            "no-recipient",
            "no-message",
            "empty-message",
            "two-recipients",
            "14-quick-replies",
            "4-buttons",
        ],
    )
    def test_invalid_bodies_are_code_100(self, server, token, body):
        response = call(server, "POST", f"/v23.0/{ACCOUNT}/messages", body=body, token=token)

        assert response.status == 400
        assert error_of(response)[0] == 100
        assert listing(server)["messages"] == []

    def test_three_buttons_and_thirteen_quick_replies_are_fine(self, server, token):
        buttons = [{"type": "web_url", "url": "https://x.example", "title": f"b{i}"} for i in range(3)]
        template = {
            "type": "template",
            "payload": {"template_type": "button", "text": "go", "buttons": buttons},
        }
        replies = [{"content_type": "text", "title": f"q{i}", "payload": "p"} for i in range(13)]

        assert send(server, token, {"comment_id": "a"}, {"attachment": template}).status == 200
        assert (
            send(server, token, {"comment_id": "b"}, {"text": "pick", "quick_replies": replies}).status == 200
        )


class TestTokens:
    def test_missing_and_unknown_tokens(self, server):
        assert error_of(send(server, None, {"comment_id": "c1"})) == (190, 467)
        assert error_of(send(server, "IGSBXnope", {"comment_id": "c1"})) == (190, 467)

    def test_expired_token(self, server, clock):
        token = server.issue_token(ACCOUNT, "demo_shop", expires_in=60, issued_at=clock.now - 120)

        response = send(server, token, {"comment_id": "c1"})

        assert error_of(response) == (190, 463)
        assert "Session has expired" in response.body["error"]["message"]

    def test_token_of_another_account(self, server, token):
        response = send(server, token, {"comment_id": "c1"}, node=OTHER_ACCOUNT)

        assert response.status == 403
        assert error_of(response) == (200, None)

    def test_me_and_query_param_token(self, server, token):
        body = {"recipient": {"comment_id": "c1"}, "message": {"text": "hi"}}
        response = call(server, "POST", "/v23.0/me/messages", body=body, params={"access_token": token})

        assert response.status == 200
        assert listing(server)["messages"][0]["account_id"] == ACCOUNT


class TestRateLimits:
    def test_750_private_replies_per_rolling_hour(self, server, token, clock):
        for index in range(750):
            clock.advance(0.05)
            last = send(server, token, {"comment_id": f"c{index}"})
            assert last.status == 200, last.body
        assert usage(last)["call_count"] >= 99

        throttled = send(server, token, {"comment_id": "one-too-many"})

        assert error_of(throttled) == (80002, None)
        assert usage(throttled)["call_count"] >= 100
        assert 0 < usage(throttled)["estimated_time_to_regain_access"] <= 60
        clock.advance(3600)
        assert send(server, token, {"comment_id": "next-hour"}).status == 200

    def test_usage_header_appears_above_half_of_the_hourly_budget(self, server, token):
        control(server, "POST", "faults", {"per_second_cap": 10_000})
        # 383 of 750 private replies in the hour is the first count above 50 % (int(51.07)).
        responses = [send(server, token, {"comment_id": f"c{i}"}) for i in range(383)]

        assert all(r.status == 200 for r in responses)
        assert USAGE_HEADER not in responses[374].headers
        assert usage(responses[-1])["call_count"] == 51

    def test_a_per_second_burst_does_not_report_hourly_usage(self, server, token):
        control(server, "POST", "faults", {"per_second_cap": 4})

        replies = [send(server, token, {"comment_id": f"c{i}"}) for i in range(4)]

        assert all(USAGE_HEADER not in r.headers for r in replies)

    def test_per_second_cap(self, server, token, clock):
        control(server, "POST", "faults", {"per_second_cap": 5})
        for index in range(5):
            assert send(server, token, {"comment_id": f"c{index}"}).status == 200

        throttled = send(server, token, {"comment_id": "c5"})

        assert error_of(throttled) == (80002, None)
        assert usage(throttled)["estimated_time_to_regain_access"] == 1
        clock.advance(1.1)
        assert send(server, token, {"comment_id": "c5"}).status == 200

    def test_limits_are_per_account(self, server, token):
        control(server, "POST", "faults", {"per_second_cap": 1})
        other = server.issue_token(OTHER_ACCOUNT, "other_shop")

        assert send(server, token, {"comment_id": "a"}).status == 200
        assert send(server, other, {"comment_id": "b"}, node=OTHER_ACCOUNT).status == 200


class TestFaults:
    def test_error_rate_gives_transient_500(self, server, token):
        control(server, "POST", "faults", {"error_rate": 1.0})

        response = send(server, token, {"comment_id": "c1"})

        assert response.status == 500
        assert error_of(response) == (2, None)
        assert response.body["error"]["is_transient"] is True
        assert listing(server)["messages"] == []
        control(server, "DELETE", "faults")
        assert send(server, token, {"comment_id": "c1"}).status == 200

    def test_throttle_next(self, server, token):
        control(server, "POST", "faults", {"throttle_next": 2, "throttle_seconds": 120})

        first, second, third = (send(server, token, {"comment_id": f"c{i}"}) for i in range(3))

        assert error_of(first) == error_of(second) == (80002, None)
        assert usage(first)["estimated_time_to_regain_access"] == 2
        assert third.status == 200
        assert control(server, "GET", "faults").body["throttle_next"] == 0

    def test_expire_tokens_for_listed_accounts_until_cleared(self, server, token):
        other = server.issue_token(OTHER_ACCOUNT, "other_shop")
        control(server, "POST", "faults", {"expire_tokens": [ACCOUNT]})

        assert error_of(send(server, token, {"comment_id": "a"})) == (190, 463)
        assert send(server, other, {"comment_id": "b"}, node=OTHER_ACCOUNT).status == 200
        reconnected = server.issue_token(ACCOUNT, "demo_shop")
        assert send(server, reconnected, {"comment_id": "c"}).status == 200

        control(server, "DELETE", "faults")
        assert send(server, token, {"comment_id": "d"}).status == 200

    def test_expire_all_tokens(self, server, token):
        control(server, "POST", "faults", {"expire_tokens": True})

        assert error_of(send(server, token, {"comment_id": "a"})) == (190, 463)

    def test_start_up_expiry_covers_later_tokens(self, clock):
        sandbox = SandboxServer(
            port=0, app_id=APP_ID, app_secret=APP_SECRET, faults={"expire_tokens": [ACCOUNT]}
        )
        token = sandbox.issue_token(ACCOUNT, "demo_shop")

        assert error_of(send(sandbox, token, {"comment_id": "a"})) == (190, 463)

    def test_latency_is_described_for_graph_routes_only(self, server, token):
        control(server, "POST", "faults", {"latency_ms": 200})

        assert send(server, token, {"comment_id": "a"}).delay_s == pytest.approx(0.2)
        assert control(server, "GET", "health").delay_s == 0

    def test_timeout_records_the_message_as_ambiguous(self, server, token):
        control(server, "POST", "faults", {"timeout_rate": 1.0})

        response = send(server, token, {"comment_id": "a"})

        assert response.drop is True
        assert listing(server)["messages"][0]["ambiguous"] is True
        assert error_of(send(server, token, {"comment_id": "a"})) == (100, 2534001)

    def test_constructor_faults_and_bad_values(self, clock):
        sandbox = SandboxServer(
            port=0, app_id=APP_ID, app_secret=APP_SECRET, clock=clock, faults={"error_rate": 1}
        )

        assert control(sandbox, "GET", "faults").body["error_rate"] == 1.0
        assert control(sandbox, "POST", "faults", {"error_rate": 2}).status == 400
        assert control(sandbox, "POST", "faults", {"nonsense": 1}).status == 400


class TestPublicReplies:
    def test_reply_creates_a_comment_and_is_listed(self, server, token):
        register_comment(server, "c1")

        response = call(server, "POST", "/v23.0/c1/replies", body={"message": "Thanks!"}, token=token)

        assert response.status == 200
        [record] = listing(server, kind="public_reply")["messages"]
        assert record["message_id"] == response.body["id"]
        assert record["message"] == {"text": "Thanks!"}

    def test_reply_to_a_reply_attaches_to_the_top_level(self, server, token):
        register_comment(server, "top")
        register_comment(server, "child", parent_id="top")

        response = call(server, "POST", "/v23.0/child/replies", params={"message": "hi"}, token=token)

        assert listing(server)["messages"][0]["recipient"] == {"comment_id": "top"}
        node = call(
            server, "GET", f"/v23.0/{response.body['id']}", params={"fields": "parent_id"}, token=token
        )
        assert node.body["parent_id"] == "top"

    @pytest.mark.parametrize(
        "fields", [{"hidden": True}, {"media_product_type": "LIVE"}], ids=["hidden", "live"]
    )
    def test_hidden_and_live_comments_cannot_be_replied_to(self, server, token, fields):
        register_comment(server, "c1", **fields)

        response = call(server, "POST", "/v23.0/c1/replies", body={"message": "hi"}, token=token)

        assert error_of(response) == (100, None)
        assert listing(server)["rejected"][0]["kind"] == "public_reply"

    def test_message_is_required(self, server, token):
        assert error_of(call(server, "POST", "/v23.0/c1/replies", body={}, token=token))[0] == 100


class TestCommentNode:
    def test_timestamp_and_fields(self, server, token, clock):
        register_comment(server, "c1", timestamp=1_700_000_000, text="LINK")

        response = call(server, "GET", "/v23.0/c1", params={"fields": "timestamp,text"}, token=token)

        assert response.body["id"] == "c1"
        assert response.body["text"] == "LINK"
        assert datetime.fromisoformat(response.body["timestamp"]).timestamp() == 1_700_000_000

    def test_unknown_field_and_unknown_comment(self, server, token):
        register_comment(server, "c1")

        assert error_of(call(server, "GET", "/v23.0/c1", params={"fields": "nope"}, token=token))[0] == 100
        assert error_of(call(server, "GET", "/v23.0/missing", token=token)) == (100, 33)


def authorize(server: SandboxServer, **extra: str) -> dict[str, list[str]]:
    params = {
        "client_id": APP_ID,
        "redirect_uri": "https://app.example/cb",
        "response_type": "code",
        "scope": "instagram_business_basic,instagram_business_manage_messages",
        "state": "csrf-1",
        **extra,
    }
    response = call(server, "GET", "/oauth/authorize", params=params)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.endswith("#_")
    return parse_qs(urlsplit(location[: -len("#_")]).query)


def exchange(server: SandboxServer, code: str, **overrides: str) -> Response:
    form = {
        "client_id": APP_ID,
        "client_secret": APP_SECRET,
        "grant_type": "authorization_code",
        "redirect_uri": "https://app.example/cb",
        "code": code,
        **overrides,
    }
    return call(server, "POST", "/oauth/access_token", form=form)


class TestOAuth:
    def test_code_to_short_to_long_to_refresh(self, server, clock):
        redirect = authorize(server, ig_user_id=ACCOUNT, username="demo_shop")
        assert redirect["state"] == ["csrf-1"]

        grant = exchange(server, redirect["code"][0]).body["data"][0]
        assert grant["permissions"] == "instagram_business_basic,instagram_business_manage_messages"
        assert grant["user_id"] != ACCOUNT  # app-scoped, docs/instagram.md#tokens-and-oauth

        me = call(
            server, "GET", "/v23.0/me", params={"fields": "user_id,username"}, token=grant["access_token"]
        )
        assert me.body["user_id"] == ACCOUNT
        assert me.body["username"] == "demo_shop"
        assert me.body["id"] == grant["user_id"]

        params = {
            "grant_type": "ig_exchange_token",
            "client_secret": APP_SECRET,
            "access_token": grant["access_token"],
        }
        long_lived = call(server, "GET", "/access_token", params=params).body
        assert long_lived["token_type"] == "bearer"
        assert long_lived["expires_in"] == 5183944

        refresh = {"grant_type": "ig_refresh_token", "access_token": long_lived["access_token"]}
        assert error_of(call(server, "GET", "/refresh_access_token", params=refresh))[0] == 100
        clock.advance(DAY + 1)
        refreshed = call(server, "GET", "/refresh_access_token", params=refresh).body
        assert refreshed["access_token"] != long_lived["access_token"]
        assert send(server, refreshed["access_token"], {"comment_id": "c1"}, node="me").status == 200

    def test_expired_long_lived_token_cannot_be_refreshed(self, server, clock):
        token = server.issue_token(ACCOUNT, "demo_shop", expires_in=5184000, issued_at=clock.now - 61 * DAY)
        refresh = {"grant_type": "ig_refresh_token", "access_token": token}

        assert error_of(call(server, "GET", "/refresh_access_token", params=refresh)) == (190, 463)

    def test_short_lived_token_lasts_an_hour(self, server, clock):
        grant = exchange(server, authorize(server)["code"][0]).body["data"][0]
        clock.advance(3601)

        assert error_of(call(server, "GET", "/v23.0/me", token=grant["access_token"])) == (190, 463)

    def test_code_is_single_use_and_checked(self, server, clock):
        code = authorize(server)["code"][0]

        wrong_secret = exchange(server, code, client_secret="nope")
        assert error_of(wrong_secret)[0] == 101
        assert wrong_secret.body["error_message"] == "Error validating client secret."
        assert error_of(exchange(server, code, redirect_uri="https://evil.example/cb")) == (100, 36008)
        assert exchange(server, code).status == 200
        assert error_of(exchange(server, code)) == (100, 36009)

        late = authorize(server)["code"][0]
        clock.advance(3601)
        assert error_of(exchange(server, late)) == (100, 36007)

    def test_exchange_needs_the_app_secret(self, server):
        grant = exchange(server, authorize(server)["code"][0]).body["data"][0]
        params = {
            "grant_type": "ig_exchange_token",
            "client_secret": "bad",
            "access_token": grant["access_token"],
        }

        assert error_of(call(server, "GET", "/access_token", params=params))[0] == 101

    def test_retired_scope_and_wrong_client(self, server):
        params = {"client_id": APP_ID, "redirect_uri": "https://a/cb", "response_type": "code"}

        assert (
            call(server, "GET", "/oauth/authorize", params={**params, "scope": "business_basic"}).status
            == 400
        )
        assert call(server, "GET", "/oauth/authorize", params={**params, "client_id": "other"}).status == 400


class TestSubscribedApps:
    def test_subscribe_list_unsubscribe(self, server, token):
        path = "/v23.0/me/subscribed_apps"
        assert call(server, "GET", path, token=token).body == {"data": []}

        fields = {"subscribed_fields": "comments,messages"}
        assert call(server, "POST", path, params=fields, token=token).body == {"success": True}

        listed = call(server, "GET", f"/v23.0/{ACCOUNT}/subscribed_apps", token=token).body["data"]
        assert listed[0]["subscribed_fields"] == ["comments", "messages"]
        assert call(server, "DELETE", path, token=token).body == {"success": True}
        assert call(server, "GET", path, token=token).body == {"data": []}

    @pytest.mark.parametrize(
        "params", [{}, {"subscribed_fields": "comments,feed_everything"}], ids=["none", "bad"]
    )
    def test_fields_are_validated(self, server, token, params):
        response = call(server, "POST", "/v23.0/me/subscribed_apps", params=params, token=token)

        assert error_of(response)[0] == 100


class TestControl:
    def test_clearing_messages_keeps_the_private_reply_memory(self, server, token):
        send(server, token, {"comment_id": "c1"})
        control(server, "DELETE", "messages")

        assert listing(server) == {"messages": [], "rejected": []}
        assert error_of(send(server, token, {"comment_id": "c1"})) == (100, 2534001)

    def test_reset_state_forgets_everything_but_identities(self, server, token):
        send(server, token, {"comment_id": "c1"})
        control(server, "POST", "faults", {"latency_ms": 50})
        control(server, "DELETE", "state")

        assert send(server, token, {"comment_id": "c1"}).status == 200
        assert control(server, "GET", "faults").body["latency_ms"] == 0

        control(server, "DELETE", "state", identities="true")
        assert error_of(send(server, token, {"comment_id": "c2"})) == (190, 467)

    def test_listing_filters_by_account(self, server, token):
        other = server.issue_token(OTHER_ACCOUNT, "other_shop")
        send(server, token, {"comment_id": "a"})
        send(server, other, {"comment_id": "b"}, node=OTHER_ACCOUNT)

        [record] = listing(server, account_id=OTHER_ACCOUNT)["messages"]

        assert record["recipient"] == {"comment_id": "b"}

    def test_listing_from_an_offset_returns_only_the_newer_sends(self, server, token):
        for comment in ("a", "b", "c"):
            send(server, token, {"comment_id": comment})

        newer = listing(server, offset="1")["messages"]

        assert [m["recipient"]["comment_id"] for m in newer] == ["b", "c"]
        assert listing(server, offset="3")["messages"] == []
        assert control(server, "GET", "messages", offset="-1").status == 400

    def test_health_and_unknown_paths(self, server):
        assert control(server, "GET", "health").status == 200
        assert control(server, "GET", "nope").status == 404
        assert error_of(call(server, "GET", "/v23.0/a/b/c")) == (2500, None)

    def test_bad_control_bodies(self, server):
        assert control(server, "POST", "comments", {"media_id": "m"}).status == 400
        assert control(server, "POST", "inbound", {"account_id": ACCOUNT}).status == 400

    def test_concurrent_sends_get_unique_ids(self, server, token):
        control(server, "POST", "faults", {"per_second_cap": 10_000})

        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(lambda i: send(server, token, {"comment_id": f"c{i}"}), range(400)))

        assert {r.status for r in responses} == {200}
        assert len({r.body["message_id"] for r in responses}) == 400
        assert len(listing(server)["messages"]) == 400


def test_the_user_profile_api_answers_follow_status_after_consent_only(
    server: SandboxServer, token: str
) -> None:
    fields = {"fields": "name,username,is_user_follow_business"}
    before = call(server, "GET", f"/v23.0/{USER}", params=fields, token=token)
    assert error_of(before) == (230, None)  # the person has not messaged or tapped yet
    assert control(server, "POST", "inbound", {"account_id": ACCOUNT, "sender_id": USER}).status == 200
    answer = call(server, "GET", f"/v23.0/{USER}", params=fields, token=token)
    assert answer.status == 200
    assert answer.body["is_user_follow_business"] is False
    assert (
        control(server, "POST", f"users/{USER}/follows", {"account_id": ACCOUNT, "follows": True}).status
        == 200
    )
    assert call(server, "GET", f"/v23.0/{USER}", params=fields, token=token).body["is_user_follow_business"]
    # Another account's follower is not this account's.
    other = server.issue_token(OTHER_ACCOUNT, "other_shop")
    assert call(server, "GET", f"/v23.0/{USER}", params=fields, token=other).status == 400
    assert (
        control(server, "POST", f"users/{USER}/follows", {"account_id": ACCOUNT, "follows": "x"}).status
        == 400
    )
