"""Trace subsegments around the remote calls (Graph API, SQS publish, SQL), annotated with the tenant
and account bound to the thread. A private X-Ray recorder with an in-memory emitter stands in for
Lambda's (no daemon, no sockets); the module-wide tracer is pointed at it for the test only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aws_xray_sdk.core  # noqa: F401 - its global recorder opens a UDP socket: import it before sockets are blocked
import httpx
import pytest
import sqlalchemy as sa

from replyflow import observability
from replyflow.adapters.graph_client import GraphClient
from replyflow.adapters.queues import SqsPublisher
from replyflow.db.engine import trace_statements
from replyflow.observability import bind_tenant, clear_tenant, traced


class MemoryEmitter:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send_entity(self, entity: Any) -> None:
        self.sent.append(entity)

    def set_daemon_address(self, address: str) -> None:
        pass


@pytest.fixture
def segment(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core.context import Context
    from aws_xray_sdk.core.recorder import AWSXRayRecorder

    # The recorder builds a UDP emitter (a socket) before configure() can replace it.
    monkeypatch.setattr("aws_xray_sdk.core.recorder.UDPEmitter", MemoryEmitter)
    recorder = AWSXRayRecorder()
    recorder.configure(context=Context(), emitter=MemoryEmitter(), sampling=False, plugins=())
    was_enabled = global_sdk_config.sdk_enabled()
    global_sdk_config.set_sdk_enabled(True)
    monkeypatch.setattr(observability.tracer, "provider", recorder)
    monkeypatch.setattr(observability.tracer, "disabled", False)
    bind_tenant("tenant-1", "account-1")
    try:
        yield recorder.begin_segment("test")
        recorder.end_segment()
    finally:
        clear_tenant()
        global_sdk_config.set_sdk_enabled(was_enabled)


def _only_subsegment(segment: Any) -> Any:
    (subsegment,) = segment.subsegments
    return subsegment


def test_traced_annotates_with_the_bound_tenant_and_account(segment: Any) -> None:
    with traced("graph messages", graph_operation="messages"):
        pass
    sub = _only_subsegment(segment)
    assert sub.name == "graph messages"
    assert sub.annotations == {
        "tenant_id": "tenant-1",
        "account_id": "account-1",
        "graph_operation": "messages",
    }


def test_traced_is_a_no_op_when_tracing_is_off() -> None:
    assert observability.tracer.disabled  # outside Lambda
    with traced("graph messages") as sub:
        assert sub is None


def test_a_graph_call_is_one_subsegment_named_by_its_edge(segment: Any) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"message_id": "m1", "recipient_id": "r1"})

    client = GraphClient(
        "https://graph.example/v23.0", client=httpx.Client(transport=httpx.MockTransport(answer))
    )
    client.send_message("17841400000000042", "token", {"comment_id": "c1"}, {"text": "hi"})
    sub = _only_subsegment(segment)
    assert sub.name == "graph messages"  # never the ids in the path
    assert sub.annotations["tenant_id"] == "tenant-1"
    assert sub.annotations["account_id"] == "account-1"
    assert "token" not in json.dumps(sub.to_dict())


class FakeSqs:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def send_message_batch(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        return {"Successful": [{"Id": e["Id"]} for e in params["Entries"]], "Failed": []}


def test_an_sqs_publish_is_one_subsegment_with_the_queue_and_count(segment: Any) -> None:
    sqs = FakeSqs()
    bodies = [json.dumps({"tenant_id": "tenant-1", "account_id": "account-1", "n": i}) for i in range(12)]
    SqsPublisher(sqs, {"sends-high": "https://sqs/q"}).publish("sends-high", bodies, delay_seconds=5)
    sub = _only_subsegment(segment)
    assert sub.name == "sqs publish sends-high"
    assert sub.annotations == {
        "tenant_id": "tenant-1",
        "account_id": "account-1",
        "queue": "sends-high",
        "messages": 12,
        "delay_seconds": 5,
    }
    assert [len(c["Entries"]) for c in sqs.calls] == [10, 2]
    assert sqs.calls[0]["Entries"][0]["MessageAttributes"] == {
        "tenant_id": {"DataType": "String", "StringValue": "tenant-1"},
        "account_id": {"DataType": "String", "StringValue": "account-1"},
    }


def test_every_sql_statement_is_a_subsegment_without_its_parameters(segment: Any) -> None:
    engine = sa.create_engine("sqlite://")
    trace_statements(engine)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT :secret AS value"), {"secret": "hunter2"})
        with pytest.raises(sa.exc.OperationalError):
            conn.execute(sa.text("SELECT * FROM missing_table"))
    ok, failed = segment.subsegments[-2:]
    assert ok.name == "sql"
    assert ok.namespace == "remote"
    assert ok.annotations == {"tenant_id": "tenant-1", "account_id": "account-1", "sql_verb": "SELECT"}
    assert ok.sql["sanitized_query"] == "SELECT ? AS value"
    assert "hunter2" not in json.dumps(ok.to_dict())
    assert failed.error is True


def test_no_sql_tracing_is_installed_outside_lambda() -> None:
    engine = sa.create_engine("sqlite://")
    trace_statements(engine)
    assert not engine.dispatch.before_cursor_execute
