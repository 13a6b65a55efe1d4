"""The Lambda authorizer: API-wide Allow policy with the principal in the context, or "Unauthorized"."""

from __future__ import annotations

import time

import pytest

from authorizer.handler import make_handler
from replyflow.services import tokens
from replyflow.settings import Settings
from replyflow.wiring.api import build_authorizer
from tests.support_pipeline import lambda_context

ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/v1/templates"


DEPS = build_authorizer(Settings(environment="test"))
lambda_handler = make_handler(lambda: DEPS)


def event(authorization: str | None) -> dict:
    headers = {"authorization": authorization} if authorization is not None else {}
    return {"type": "REQUEST", "methodArn": ARN, "headers": headers}


def test_valid_jwt_allows_every_route_and_passes_the_principal() -> None:
    before = time.time_ns() // 1_000_000
    token = tokens.issue_access_token(
        DEPS.key_ring, user_id="u1", tenant_id="t1", role="member", ttl_seconds=60, session_id="s1"
    )
    result = lambda_handler(event(f"Bearer {token}"), lambda_context())
    statement = result["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/*/*"
    issued = int(result["context"].pop("issued_at_ms"))
    assert before <= issued <= time.time_ns() // 1_000_000
    assert result["context"] == {
        "tenant_id": "t1",
        "principal_id": "u1",
        "role": "member",
        "principal_type": "user",
        "session_id": "s1",
    }


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic abc", "Bearer nope", "Bearer rfk_bad"])
def test_missing_or_malformed_credentials_are_unauthorized(authorization: str | None) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        lambda_handler(event(authorization), lambda_context())


def test_token_with_unknown_role_is_unauthorized() -> None:
    token = tokens.issue_access_token(
        DEPS.key_ring, user_id="u1", tenant_id="t1", role="root", ttl_seconds=60
    )
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        lambda_handler(event(f"Bearer {token}"), lambda_context())
