"""Graph client over httpx.MockTransport (no sockets) and the error classification of
docs/instagram.md#errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from replyflow.adapters.graph_client import GraphClient, GraphError, classify


def envelope(code: int, subcode: int | None = None, message: str = "x", **extra: object) -> dict:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "A1", **extra}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


BUC = {
    "x-business-use-case-usage": json.dumps(
        {"1784": [{"type": "instagram", "call_count": 100, "estimated_time_to_regain_access": 3}]}
    )
}


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "retry"),
    [
        (400, envelope(80002), BUC, "throttle", 180.0),
        (400, envelope(4), {}, "throttle", 60.0),
        (400, envelope(613), {"retry-after": "7"}, "throttle", 7.0),
        (400, envelope(17), {}, "throttle", 60.0),
        (400, envelope(190, 463), {}, "token_invalid", None),
        (400, envelope(190, 467), {}, "token_invalid", None),
        (400, envelope(10, 2018278), {}, "outside_window", None),
        (400, envelope(10, 2534022), {}, "outside_window", None),
        (400, envelope(10), {}, "misconfigured", None),
        (400, envelope(10, 2018001), {}, "misconfigured", None),
        (400, envelope(3), {}, "misconfigured", None),
        (400, envelope(551, 1545041), {}, "user_unavailable", None),
        (400, envelope(100, 2534001), {}, "already_replied", None),
        (
            400,
            envelope(100, None, "A private reply has already been sent for this comment."),
            {},
            "already_replied",
            None,
        ),
        (400, envelope(100, 33), {}, "permanent", None),
        (403, envelope(200), {}, "misconfigured", None),
        (403, envelope(299), {}, "misconfigured", None),
        (400, envelope(300), {}, "permanent", None),
        (400, envelope(368, 1390008), {}, "policy_block", None),
        (500, envelope(2, is_transient=True), {}, "transient", None),
        (400, envelope(1), {}, "transient", None),
        (400, envelope(999, is_transient=True), {}, "transient", None),
        (502, None, {}, "transient", None),
        (429, None, {"Retry-After": "5"}, "throttle", 5.0),
    ],
)
def test_classification(
    status: int, body: dict | None, headers: dict, kind: str, retry: float | None
) -> None:
    error = classify(status, body, headers)
    assert error.kind == kind
    if kind == "throttle":
        assert error.retry_after == retry


def client(handler: Callable[[httpx.Request], httpx.Response]) -> GraphClient:
    return GraphClient(
        "https://graph.test/v23.0", client=httpx.Client(transport=httpx.MockTransport(handler))
    )


def test_send_message_posts_bearer_json_and_reads_the_result() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"recipient_id": "u1", "message_id": "mid.1"}, headers=BUC)

    result = client(handler).send_message("1784", "tok", {"comment_id": "c1"}, {"text": "hi"})
    assert (result.message_id, result.recipient_id, result.usage_pct) == ("mid.1", "u1", 100)
    request = seen[0]
    assert str(request.url) == "https://graph.test/v23.0/1784/messages"
    assert request.headers["authorization"] == "Bearer tok"
    assert json.loads(request.content) == {"recipient": {"comment_id": "c1"}, "message": {"text": "hi"}}


def test_public_reply_endpoint() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v23.0/c1/replies"
        assert json.loads(request.content) == {"message": "thanks"}
        return httpx.Response(200, json={"id": "c2"})

    assert client(handler).reply_to_comment("c1", "tok", "thanks").message_id == "c2"


def test_errors_and_transport_failures() -> None:
    def graph_error(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json=envelope(190, 463))

    with pytest.raises(GraphError) as info:
        client(graph_error).send_message("1", "t", {"id": "u"}, {"text": "x"})
    assert info.value.kind == "token_invalid"
    assert info.value.error_code == "token_invalid:190"

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(GraphError) as info:
        client(refused).send_message("1", "t", {"id": "u"}, {"text": "x"})
    assert info.value.kind == "transient"  # never left: safe to retry

    for exc in (httpx.ReadTimeout("no answer"), httpx.RemoteProtocolError("server disconnected")):

        def dropped(request: httpx.Request, exc: Exception = exc) -> httpx.Response:
            raise exc

        with pytest.raises(GraphError) as info:
            client(dropped).send_message("1", "t", {"comment_id": "c"}, {"text": "x"})
        assert info.value.kind == "ambiguous"  # may have been delivered: the ledger decides


ODD_USAGE = {
    "x-business-use-case-usage": json.dumps(
        {
            "1784": [
                {
                    "type": "instagram",
                    "call_count": "95",
                    "total_time": None,
                    "estimated_time_to_regain_access": "soon",
                }
            ]
        }
    )
}


def test_an_odd_usage_header_never_turns_an_answer_into_a_crash() -> None:
    """Header values of another type must not raise: after a 200 the message has gone out (a crash
    would leave it 'sending', later 'unknown'), and a throttle must still be a throttle."""

    def sent(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"recipient_id": "u1", "message_id": "mid.1"}, headers=ODD_USAGE)

    result = client(sent).send_message("1784", "tok", {"comment_id": "c1"}, {"text": "hi"})
    assert (result.message_id, result.usage_pct) == ("mid.1", 95)
    error = classify(400, envelope(80002), ODD_USAGE)
    assert (error.kind, error.retry_after) == ("throttle", 60.0)


def test_app_level_usage_is_read_apart_from_the_accounts_usage() -> None:
    """``X-App-Usage`` is the whole app's share of its platform limit (docs/instagram.md#usage-headers)."""
    app_usage = {"x-app-usage": json.dumps({"call_count": 91, "total_cputime": 12, "total_time": 40})}

    def sent(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"recipient_id": "u1", "message_id": "mid.1"}, headers=app_usage)

    result = client(sent).send_message("1784", "tok", {"comment_id": "c1"}, {"text": "hi"})
    assert (result.usage_pct, result.app_usage_pct) == (None, 91)

    def odd(request: httpx.Request) -> httpx.Response:
        headers = {"X-App-Usage": '{"call_count": "lots", "total_time": null}', **BUC}
        return httpx.Response(200, json={"id": "c2"}, headers=headers)

    result = client(odd).reply_to_comment("c1", "tok", "thanks")
    assert (result.usage_pct, result.app_usage_pct) == (100, 0)


def test_user_follows_reads_the_user_profile_api() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/111"):
            return httpx.Response(200, json={"id": "111", "is_user_follow_business": True})
        if request.url.path.endswith("/222"):
            return httpx.Response(200, json={"id": "222"})
        body = {
            "error": {"message": "(#230) User consent is required", "type": "OAuthException", "code": 230}
        }
        return httpx.Response(400, json=body)

    graph = client(handler)
    assert graph.user_follows("111", "tok") is True
    assert "is_user_follow_business" in seen[0].url.params["fields"]
    assert seen[0].headers["Authorization"] == "Bearer tok"
    assert graph.user_follows("222", "tok") is None
    with pytest.raises(GraphError):
        graph.user_follows("333", "tok")
