"""The sample events in events/ drive the real handlers: the authorizer's REQUEST event, and proxy
events for sign-up, a list read with the authorizer context already attached, and accepting an
invitation (a public route: no authorizer context)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from replyflow.domain.plans import CONSOLE_REQUESTS_PER_MINUTE
from tests.conftest import load_event
from tests.support_pipeline import lambda_context
from tests.unit.test_api_support import ApiEnv, make_env


@pytest.fixture
def api_env(sqlite_url: str) -> Iterator[ApiEnv]:
    yield from make_env(sqlite_url)


def test_sample_events(api_env: ApiEnv) -> None:
    signup = load_event("api_signup.json")
    response = api_env.api_handler(signup, lambda_context())
    assert response["statusCode"] == 201, response["body"]
    pair = json.loads(response["body"])

    request = load_event("api_authorizer_request.json")
    request["headers"]["Authorization"] = f"Bearer {pair['access_token']}"
    policy = api_env.authorizer_handler(request, lambda_context())
    assert policy["policyDocument"]["Statement"][0]["Resource"].endswith("/v1/*/*")
    assert policy["context"]["tenant_id"] == pair["tenant_id"]

    read = load_event("api_get_automations.json")
    read["requestContext"]["authorizer"] = policy["context"]
    listed = api_env.api_handler(read, lambda_context())
    assert listed["statusCode"] == 200
    assert json.loads(listed["body"]) == []
    assert listed["multiValueHeaders"]["X-RateLimit-Limit"] == [str(CONSOLE_REQUESTS_PER_MINUTE)]
    assert listed["multiValueHeaders"]["X-RateLimit-Allowance"] == ["console"]


def test_sample_invitation_accept_event(api_env: ApiEnv) -> None:
    owner = api_env.signup()
    email = "teammate@example.com"
    invited = api_env.call("POST", "/v1/members", token=owner["access_token"], body={"email": email})
    assert invited.status == 201
    event = load_event("api_invitation_accept.json")
    body = json.loads(event["body"])
    event["body"] = json.dumps({**body, "token": api_env.last_token(email, "invitation")})
    response = api_env.api_handler(event, lambda_context())
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["tenant_id"] == owner["tenant_id"]
