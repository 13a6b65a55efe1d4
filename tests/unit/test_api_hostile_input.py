"""Bodies and parameters built to break a parser get a 4xx in the one error shape, never a 5xx: the
API through the in-process gateway (SQLite), the webhook handler, and the shared decoder itself."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from api.request_body import MAX_BODY_BYTES
from replyflow.errors import MalformedJsonError, PayloadTooLargeError
from replyflow.json_input import MAX_DEPTH, decode_json
from replyflow.services.logs_query import encode_cursor
from tests.support_pipeline import lambda_context
from tests.unit.test_api_support import ApiEnv, make_env

HOSTILE_BODIES = {
    "invalid_utf8": b'{"email": "\xff\xfe@example.com", "password": "correct horse battery"}',
    "huge_integer": b'{"email": "a@example.com", "password": ' + b"9" * 5000 + b"}",
    "past_int64": b'{"email": "a@example.com", "password": 9223372036854775808}',
    "deep_nesting": b"[" * 10_000 + b"]" * 10_000,
    "nan": b'{"email": "a@example.com", "password": NaN}',
    "infinity": b'{"email": "a@example.com", "password": -Infinity}',
    "overflowing_float": b'{"email": "a@example.com", "password": 1e999}',
    "truncated": b'{"email": ',
}


def assert_error_shape(body: object, status: int) -> str:
    assert 400 <= status < 500
    assert isinstance(body, dict), body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_decoder_refuses_what_json_loads_mishandles(name: str) -> None:
    with pytest.raises(MalformedJsonError):
        decode_json(HOSTILE_BODIES[name])


def test_decoder_limits() -> None:
    assert decode_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    with pytest.raises(MalformedJsonError):
        decode_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert decode_json(str(2**63 - 1)) == 2**63 - 1
    assert decode_json(str(-(2**63))) == -(2**63)
    with pytest.raises(PayloadTooLargeError):
        decode_json(b"[1]", max_bytes=2)


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_api_body_is_400_malformed_json(api_env: ApiEnv, name: str) -> None:
    response = api_env.call("POST", "/v1/auth/login", body=HOSTILE_BODIES[name])
    assert assert_error_shape(response.body, response.status) == "malformed_json", response.body
    assert response.status == 400


def test_authenticated_bodies_are_decoded_the_same_way(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    response = api_env.call("POST", "/v1/templates", token=token, body=b'{"name": "x", "text": NaN}')
    assert (response.status, response.body["error"]["code"]) == (400, "malformed_json")
    assert "X-RateLimit-Limit" in response.headers  # the refused request still counted


def test_bad_base64_and_oversized_bodies(api_env: ApiEnv) -> None:
    too_big = json.dumps({"email": "a@example.com", "password": "x" * MAX_BODY_BYTES}).encode()
    response = api_env.call("POST", "/v1/auth/login", body=too_big)
    assert assert_error_shape(response.body, response.status) == "payload_too_large"
    assert response.status == 413
    flagged = api_env.call("POST", "/v1/auth/login", body=b"\xff\xfe")  # sent base64, as API Gateway does
    assert (flagged.status, flagged.body["error"]["code"]) == (400, "malformed_json")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b"email=a"),
        ("application/x-www-form-urlencoded", b"email=a&password=b"),
        ("multipart/form-data", b"no boundary at all"),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\n\r\n\xff--xyz--"),
    ],
)
def test_bodies_that_are_not_json_are_415(api_env: ApiEnv, content_type: str, body: bytes) -> None:
    response = api_env.call("POST", "/v1/auth/login", body=body, headers={"Content-Type": content_type})
    assert assert_error_shape(response.body, response.status) == "unsupported_media_type"
    assert response.status == 415


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON"])
def test_json_with_parameters_is_json(api_env: ApiEnv, content_type: str) -> None:
    body = {"email": "nobody@example.com", "password": "correct horse battery"}
    response = api_env.call("POST", "/v1/auth/login", body=body, headers={"Content-Type": content_type})
    assert response.status == 401, response.body


@pytest.mark.parametrize(
    ("kind", "row_id", "created"),
    [
        ("r", 2**63, "2026-01-01T00:00:00"),
        ("r", 2**64 + 5, "2026-01-01T00:00:00"),
        ("r", 0, "2026-01-01T00:00:00"),
        ("r", True, "2026-01-01T00:00:00"),
        ("r", 1, "0001-01-01T00:00:00+05:00"),
        ("r", 1, None),
        ("a", 1, "2026-01-01T00:00:00"),
    ],
)
def test_cursors_out_of_range_are_422(api_env: ApiEnv, kind: str, row_id: object, created: object) -> None:
    token = api_env.signup()["access_token"]
    raw = json.dumps({"l": kind, "t": created, "i": row_id}).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = api_env.call("GET", "/v1/logs/replies", token=token, query={"cursor": cursor})
    assert assert_error_shape(response.body, response.status) == "invalid_cursor", response.body
    assert response.status == 422


def test_a_cursor_we_issued_still_works(api_env: ApiEnv) -> None:
    from datetime import datetime

    token = api_env.signup()["access_token"]
    cursor = encode_cursor("r", datetime(2026, 1, 1), 2**63 - 1)
    response = api_env.call("GET", "/v1/logs/replies", token=token, query={"cursor": cursor})
    assert response.status == 200, response.body


def test_times_whose_offset_leaves_the_calendar_are_422(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    response = api_env.call(
        "GET", "/v1/logs/replies", token=token, query={"since": "0001-01-01T00:00:00+05:00"}
    )
    assert assert_error_shape(response.body, response.status) == "validation_error", response.body


def test_204_has_no_body(api_env: ApiEnv) -> None:

    pair = api_env.signup()
    event = {
        "resource": "/v1/auth/logout",
        "path": "/v1/auth/logout",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "requestContext": {"stage": "v1", "identity": {"sourceIp": "10.9.9.9"}},
        "body": json.dumps({"refresh_token": pair["refresh_token"]}),
        "isBase64Encoded": False,
    }
    raw = api_env.api_handler(event, lambda_context("ApiFunction"))
    assert raw["statusCode"] == 204
    assert raw["body"] in (None, "")  # not "null": a body after a 204 desyncs keep-alive
    assert "Content-Type" not in (raw.get("headers") or {})


@pytest.mark.parametrize("until", ["0001-01-01", "0001-01-03", "9999-12-31"])
def test_stats_at_the_ends_of_the_calendar(api_env: ApiEnv, until: str) -> None:
    token = api_env.signup()["access_token"]
    response = api_env.call("GET", "/v1/stats", token=token, query={"until": until})
    assert response.status == 200, response.body
    assert response.body["until"] == until
