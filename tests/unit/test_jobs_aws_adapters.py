"""SQS (DLQ tools, queue depth) with moto, and the Graph token client over httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from replyflow.adapters.graph_tokens import HttpxGraphTokenClient
from replyflow.adapters.sqs_admin import SqsQueueStats
from replyflow.ports import GraphCallError
from replyflow.services.jobs import dlq


@pytest.fixture
def sqs() -> Iterator[tuple[Any, dict[str, str]]]:
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        urls = {}
        for name in ("events-high", "sends-default"):
            dlq_url = client.create_queue(QueueName=f"rf-{name}-dlq")["QueueUrl"]
            arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
            urls[name] = client.create_queue(QueueName=f"rf-{name}", Attributes={"RedrivePolicy": policy})[
                "QueueUrl"
            ]
        yield client, urls


def _dlq_url(client: Any, name: str) -> str:
    url: str = client.get_queue_url(QueueName=f"rf-{name}-dlq")["QueueUrl"]
    return url


def test_dlq_list_and_redrive_one_queue(sqs: tuple[Any, dict[str, str]]) -> None:
    client, urls = sqs
    for i in range(13):
        client.send_message(
            QueueUrl=_dlq_url(client, "events-high"),
            MessageBody=json.dumps({"n": i}),
            MessageAttributes={"tenant": {"DataType": "String", "StringValue": "t1"}},
        )
    client.send_message(QueueUrl=_dlq_url(client, "sends-default"), MessageBody="{}")

    listed = {d.queue: d for d in dlq.list_dlqs(client, urls)}
    assert listed["events-high"].messages == 13
    assert listed["sends-default"].messages == 1
    assert listed["events-high"].dlq_url
    assert listed["events-high"].dlq_url.endswith("rf-events-high-dlq")
    assert len(dlq.peek(client, urls, "events-high", limit=3)) == 3

    results = dlq.redrive(client, urls, "events-high")
    assert results == [dlq.RedriveResult("events-high", 13, 0)]
    moved = []
    while batch := client.receive_message(
        QueueUrl=urls["events-high"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages"):
        moved += batch
        client.delete_message_batch(
            QueueUrl=urls["events-high"],
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    assert sorted(json.loads(m["Body"])["n"] for m in moved) == list(range(13))
    assert moved[0]["MessageAttributes"]["tenant"]["StringValue"] == "t1"
    assert {d.queue: d.messages for d in dlq.list_dlqs(client, urls)} == {
        "events-high": 0,
        "sends-default": 1,
    }

    # Every queue, bounded.
    assert dlq.redrive(client, urls, max_messages=5) == [
        dlq.RedriveResult("events-high", 0, 0),
        dlq.RedriveResult("sends-default", 1, 0),
    ]
    with pytest.raises(dlq.UnknownQueueError):
        dlq.redrive(client, urls, "nope")


def test_sqs_queue_stats_reads_depth_and_dlq(sqs: tuple[Any, dict[str, str]]) -> None:
    client, urls = sqs
    client.send_message(QueueUrl=urls["events-high"], MessageBody="a")
    client.send_message(QueueUrl=urls["events-high"], MessageBody="b", DelaySeconds=60)
    client.send_message(QueueUrl=_dlq_url(client, "sends-default"), MessageBody="c")
    stats = SqsQueueStats(client, urls).stats()
    assert stats["events-high"].visible == 1
    assert stats["events-high"].delayed == 1
    assert stats["events-high"].oldest_age_seconds is None
    assert stats["sends-default"].dlq == 1


def _client(handler: Any) -> HttpxGraphTokenClient:
    return HttpxGraphTokenClient(
        base_url="https://graph.test",
        graph_base="https://graph.test/v23.0",
        timeout=1,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def test_graph_refresh_and_subscriptions_requests() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/refresh_access_token":
            return httpx.Response(
                200, json={"access_token": "new", "token_type": "bearer", "expires_in": 5183944}
            )
        if request.method == "GET":
            data = [
                {"id": "app-1", "subscribed_fields": ["comments"]},
                {"id": "other", "subscribed_fields": ["x"]},
            ]
            return httpx.Response(200, json={"data": data})
        return httpx.Response(200, json={"success": True})

    client = _client(handler)
    refreshed = client.refresh_token("old")
    assert (refreshed.access_token, refreshed.expires_in) == ("new", 5183944)
    assert seen[0].url.params["grant_type"] == "ig_refresh_token"
    assert seen[0].url.params["access_token"] == "old"
    assert client.subscribed_fields("tok", "app-1") == {"comments"}
    assert seen[1].url.path == "/v23.0/me/subscribed_apps"
    assert seen[1].headers["authorization"] == "Bearer tok"
    client.subscribe("tok", ["comments", "messages"])
    assert seen[2].method == "POST"
    assert seen[2].url.params["subscribed_fields"] == "comments,messages"


def _graph_error(status: int, **error: object) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": "m", **error}})


@pytest.mark.parametrize(
    ("response", "code", "transient", "needs_login"),
    [
        (_graph_error(400, code=190, error_subcode=463), 190, False, True),
        (_graph_error(400, code=10), 10, False, True),
        (_graph_error(400, code=100), 100, False, False),
        (_graph_error(500, code=2, is_transient=True), 2, True, False),
        (_graph_error(400, code=4), 4, True, False),
        (httpx.Response(502, text="bad gateway"), None, True, False),
    ],
)
def test_graph_errors_are_classified(
    response: httpx.Response, code: int | None, transient: bool, needs_login: bool
) -> None:
    client = _client(lambda request: response)
    with pytest.raises(GraphCallError) as caught:
        client.refresh_token("t")
    assert (caught.value.graph_code, caught.value.transient, caught.value.needs_login) == (
        code,
        transient,
        needs_login,
    )


def test_graph_timeouts_are_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(GraphCallError) as caught:
        _client(handler).subscribed_fields("t", None)
    assert caught.value.transient
