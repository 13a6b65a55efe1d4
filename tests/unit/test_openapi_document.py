"""/openapi.json tells the truth: security schemes, each operation's statuses with the one error
schema (never Powertools' HTTPValidationError), public operations marked, date-times with ``Z``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.unit.test_api_support import ApiEnv, make_env

PUBLIC = {
    "/v1/auth/signup",
    "/v1/auth/login",
    "/v1/auth/refresh",
    "/v1/auth/logout",
    "/v1/auth/password/forgot",
    "/v1/auth/password/reset",
    "/v1/plans",
    "/v1/data-deletion",
    "/v1/data-deletion/{code}",
    "/v1/deauthorize",
}
OPTIONAL_BEARER = {"/v1/invitations/accept"}  # signed in as the invitee, or a new account's password


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def test_the_document_declares_security_and_real_statuses(api_env: ApiEnv) -> None:
    doc = api_env.call("GET", "/openapi.json").body
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT or rfk_ API key",
        "description": "An access JWT from /v1/auth/login, or a tenant API key (rfk_...)",
    }
    assert doc["security"] == [{"bearerAuth": []}]
    assert "HTTPValidationError" not in json.dumps(doc["paths"])  # defined by Powertools, never used
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            statuses = {int(s) for s in operation["responses"]}
            for status in statuses - {200, 201, 202, 204}:
                content = operation["responses"][str(status)]["content"]["application/json"]
                assert content["schema"] == error_ref, (method, path, status)
            if path in OPTIONAL_BEARER:
                assert operation["security"] == [{}, {"bearerAuth": []}], (method, path)
            elif path in PUBLIC or path.endswith("/oauth/callback"):
                assert operation["security"] == [{}], (method, path)
            else:
                assert "security" not in operation, (method, path)
                assert {401, 403, 429, 422} <= statuses, (method, path)
            if "requestBody" in operation:
                assert {400, 413, 415} <= statuses, (method, path)
            if "{" in path:
                assert 404 in statuses, (method, path)
    assert "201" in doc["paths"]["/v1/templates"]["post"]["responses"]
    deleted = doc["paths"]["/v1/templates/{template_id}"]["delete"]["responses"]
    assert "204" in deleted
    assert not deleted["204"].get("content")
    assert "409" in deleted


def test_date_times_carry_z(api_env: ApiEnv) -> None:
    token = api_env.signup()["access_token"]
    template = api_env.call("POST", "/v1/templates", token=token, body={"name": "n", "text": "hi"}).body
    for field in ("created_at", "updated_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", template[field]), template[field]
    current = api_env.call("GET", "/v1/subscriptions/current", token=token).body
    assert current["current_period_end"].endswith("Z")


def test_swagger_ui_serves_the_same_document(api_env: ApiEnv) -> None:
    page = api_env.call("GET", "/docs")
    assert page.status == 200
    assert "bearerAuth" in str(page.body)
    assert "ErrorResponse" in str(page.body)
