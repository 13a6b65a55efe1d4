"""The processor's near-edge read of a comment's creation time, against the local sandbox over HTTP:
``GET /{comment-id}?fields=timestamp`` (docs/instagram.md#private-replies)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from local.sandbox.server import SandboxServer
from replyflow.adapters.graph_client import GraphClient, GraphError, parse_graph_time

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer("127.0.0.1", 0, app_id="ts-app", app_secret="ts-secret")
    server.start()
    yield server
    server.stop()


def test_the_comment_timestamp_comes_from_the_sandbox(sandbox: SandboxServer) -> None:
    token = sandbox.issue_token("17841400000000777", "ts.account")
    created = datetime(2026, 11, 21, 9, 30, 15)
    registered = httpx.post(
        f"{sandbox.url}/_sandbox/comments",
        json={"id": "c-777", "from_id": "igsid-1", "timestamp": "2026-11-21T09:30:15+0000", "text": "hi"},
        timeout=5,
    )
    assert registered.status_code == 200, registered.text
    client = GraphClient(sandbox.graph_url, timeout_seconds=5)
    try:
        assert client.comment_created_at("c-777", token) == created
        with pytest.raises(GraphError):
            client.comment_created_at("c-unknown", token)
    finally:
        client.close()


def test_graph_times_parse_to_naive_utc() -> None:
    assert parse_graph_time("2026-11-21T09:30:15+0000") == datetime(2026, 11, 21, 9, 30, 15)
    assert parse_graph_time("2026-11-21T11:30:15+0200") == datetime(2026, 11, 21, 9, 30, 15)
    assert parse_graph_time("2026-11-21T09:30:15Z") == datetime(2026, 11, 21, 9, 30, 15)
    assert parse_graph_time("2026-11-21T09:30:15") is None
    assert parse_graph_time(None) is None
    assert parse_graph_time("yesterday") is None


def test_the_sandbox_comments_adapter_registers_at_the_graph_origin(sandbox: SandboxServer) -> None:
    from replyflow.adapters.sandbox_comments import HttpxSandboxComments, sandbox_origin
    from replyflow.errors import SandboxUnavailableError
    from replyflow.ports import SandboxComment

    assert sandbox_origin(sandbox.graph_url) == str(sandbox.url).rstrip("/")
    token = sandbox.issue_token("17841400000000778", "adapter.account")
    comment = SandboxComment(
        comment_id="c-778",
        account_id="17841400000000778",
        from_id="7351928465012834",
        username="maya.creates",
        text="LINK please",
        media_id="18034567890123456",
        timestamp=datetime(2026, 11, 21, 9, 30, 15, tzinfo=UTC).timestamp(),
    )
    HttpxSandboxComments.for_graph(sandbox.graph_url).register(comment)
    client = GraphClient(sandbox.graph_url, timeout_seconds=5)
    try:
        assert client.comment_created_at("c-778", token) == datetime(2026, 11, 21, 9, 30, 15)
    finally:
        client.close()
    with pytest.raises(SandboxUnavailableError):
        HttpxSandboxComments("http://127.0.0.1:9", timeout_seconds=1).register(comment)
    with pytest.raises(SandboxUnavailableError):
        sandbox_origin("graph.instagram.com")
