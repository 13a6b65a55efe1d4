"""The local stack's HTTP edge over real sockets: no input gets a 5xx or an HTML page, a 204 keeps a
keep-alive connection in step, and bodies past API Gateway's quota are refused unread."""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import urlsplit

import pytest

from local.gateway import MAX_BODY_BYTES
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e


def connect(stack: RunningStack) -> http.client.HTTPConnection:
    url = urlsplit(stack.api_url)
    return http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)


def error_code(response: http.client.HTTPResponse) -> str:
    assert response.getheader("Content-Type") == "application/json"
    body = json.loads(response.read())
    assert set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


@pytest.mark.parametrize("method", ["FOO", "PROPFIND", "BREW"])
def test_unknown_methods_are_405_json(local_stack: RunningStack, method: str) -> None:
    conn = connect(local_stack)
    conn.request(method, "/health")
    response = conn.getresponse()
    assert response.status == 405
    assert error_code(response) == "method_not_allowed"
    conn.request("GET", "/health")  # the same connection still serves
    assert conn.getresponse().status == 200
    conn.close()


def test_a_204_leaves_the_keep_alive_connection_in_step(local_stack: RunningStack) -> None:
    signup = local_stack.request(
        "POST",
        "/v1/auth/signup",
        json={"email": "edge-204@example.com", "password": "correct horse battery", "workspace_name": "E"},
    )
    assert signup.status_code == 201, signup.text
    conn = connect(local_stack)
    body = json.dumps({"refresh_token": signup.json()["refresh_token"]})
    conn.request("POST", "/v1/auth/logout", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 204
    assert response.getheader("Content-Length") is None
    assert response.read() == b""
    conn.request("GET", "/health")
    follow = conn.getresponse()
    assert (follow.status, json.loads(follow.read())) == (200, {"status": "ok"})
    conn.close()


def test_a_body_over_the_quota_is_413_unread(local_stack: RunningStack) -> None:
    conn = connect(local_stack)
    conn.putrequest("POST", "/v1/auth/login")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413
    assert response.getheader("Connection") == "close"
    assert error_code(response) == "payload_too_large"
    conn.close()


def test_a_body_over_the_api_limit_is_413(local_stack: RunningStack) -> None:
    response = local_stack.request(
        "POST",
        "/v1/auth/login",
        content=b'{"email": "' + b"a" * 100_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /health HTTP/2.0\r\n\r\n",  # http.server's own 505
        b"NOT A REQUEST LINE AT ALL\r\n\r\n",
        b"GET /health HTTP/1.1\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
)
def test_requests_http_server_refuses_are_4xx_json(local_stack: RunningStack, raw: bytes) -> None:
    url = urlsplit(local_stack.api_url)
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert 400 <= status < 500, head
    assert json.loads(body)["error"]["code"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"email": "\xff", "password": "x"}',
        b'{"email": "a@example.com", "password": ' + b"1" * 5000 + b"}",
        b"[" * 10_000 + b"]" * 10_000,
        b'{"email": "a@example.com", "password": NaN}',
    ],
)
def test_hostile_json_is_400_over_http(local_stack: RunningStack, body: bytes) -> None:
    response = local_stack.request(
        "POST", "/v1/auth/login", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_json"


def test_webhook_refuses_nan_before_anything_is_enqueued(local_stack: RunningStack) -> None:
    body = b'{"object": "instagram", "entry": [{"id": "1", "time": NaN, "changes": []}]}'
    response = local_stack.post_webhook(body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_json"
