"""The migrate function's contract with CloudFormation, without a database: always exactly one answer,
Delete touches nothing, a run past the Lambda deadline still answers FAILED, and the AWS endpoint
settings reach every boto3 client."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import URL, Engine

from local.lambda_context import LambdaContext
from migrate import handler
from replyflow.adapters.cfn_response import MAX_REASON_CHARS, CustomResourceRequest, CustomResourceResponse
from replyflow.errors import ValidationError
from replyflow.services.schema_deploy import handle_request
from replyflow.settings import Settings
from replyflow.wiring.core import Clients
from replyflow.wiring.migrate import build_migrate

EVENT: dict[str, Any] = {
    "RequestType": "Create",
    "ResponseURL": "https://cloudformation-custom-resource-response.example/signed",
    "StackId": "arn:aws:cloudformation:us-east-1:000000000000:stack/replyflow/abc",
    "RequestId": "req-1",
    "LogicalResourceId": "DatabaseSchema",
    "ResourceType": "Custom::DatabaseSchema",
    "ResourceProperties": {"ServiceToken": "arn"},
}


class NoSecrets:
    def json(self, secret_id: str) -> dict[str, Any]:
        raise AssertionError("a Delete must not read secrets")


def _no_engine(url: URL, iam_auth: bool) -> Engine:
    raise AssertionError("no database may be touched")


class Deadline(LambdaContext):
    def __init__(self, remaining_ms: int) -> None:
        super().__init__("migrate", 512, remaining_ms / 1000)
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


def test_delete_answers_success_and_touches_nothing() -> None:
    request = CustomResourceRequest.model_validate(
        {**EVENT, "RequestType": "Delete", "PhysicalResourceId": "replyflow/replyflow_app"}
    )
    response = handle_request(request, NoSecrets(), _no_engine, deadline=0)
    assert (response.status, response.physical_resource_id) == ("SUCCESS", "replyflow/replyflow_app")


def test_missing_properties_fail_with_the_field_names_not_a_crash() -> None:
    request = CustomResourceRequest.model_validate(EVENT)
    response = handle_request(request, NoSecrets(), _no_engine, deadline=0)
    assert response.status == "FAILED"
    assert "MasterSecretArn" in response.reason
    assert response.physical_resource_id == "DatabaseSchema-not-created"


def test_a_long_reason_is_cut_to_fit_the_response_limit() -> None:
    request = CustomResourceRequest.model_validate(EVENT)
    response = CustomResourceResponse.to(request, "FAILED", "x", reason="e" * 10_000)
    assert len(response.reason) == MAX_REASON_CHARS
    assert len(response.body()) < 4096


def test_a_run_past_the_deadline_still_answers_failed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[CustomResourceResponse] = []
    deps = build_migrate(
        Settings(), secrets=NoSecrets(), respond=lambda url, response: answers.append(response)
    )

    def slow(request: CustomResourceRequest, *_args: Any, **_kwargs: Any) -> CustomResourceResponse:
        time.sleep(1.5)
        return CustomResourceResponse.to(request, "SUCCESS", "late")

    monkeypatch.setattr(handler, "handle_request", slow)
    # 10.5 s left: the timer answers 10 s before the end (after about a second).
    handler.make_handler(lambda: deps)(EVENT, Deadline(10_500))
    (answer,) = answers
    assert answer.status == "FAILED"
    assert "did not finish" in answer.reason


def test_a_non_cloudformation_event_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        handler.lambda_handler({"job": "archive"}, Deadline(60_000))


def test_endpoint_settings_reach_the_boto3_clients() -> None:
    settings = Settings(aws_endpoint_url="http://127.0.0.1:1", aws_endpoint_url_sqs="http://127.0.0.1:2")
    assert settings.aws_endpoint("sqs") == "http://127.0.0.1:2"
    assert settings.aws_endpoint("s3") == "http://127.0.0.1:1"
    assert Settings().aws_endpoint("sqs") is None
    clients = Clients(settings)
    assert clients.aws_client("sqs").meta.endpoint_url == "http://127.0.0.1:2"
    assert clients.aws_client("secretsmanager").meta.endpoint_url == "http://127.0.0.1:1"


def test_the_secrets_manager_endpoint_has_its_own_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:3")
    assert Settings().aws_endpoint("secretsmanager") == "http://127.0.0.1:3"


class FlakyEngine:
    """Refuses ``failures`` connections (the proxy still registering its target), then connects."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0

    def connect(self) -> Any:
        import contextlib

        from sqlalchemy.exc import OperationalError

        self.attempts += 1
        if self.attempts <= self.failures:
            raise OperationalError("connect", {}, Exception("(2003) Can't connect"))
        return contextlib.nullcontext()


def test_the_database_is_awaited_until_it_answers_or_the_deadline() -> None:
    from replyflow.db.provision import ProvisionError, wait_for_database

    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    engine = FlakyEngine(failures=3)
    wait_for_database(engine, deadline=60, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    assert (engine.attempts, sleeps) == (4, [5.0, 5.0, 5.0])

    engine = FlakyEngine(failures=100)
    with pytest.raises(ProvisionError, match="did not accept a connection in time"):
        wait_for_database(engine, deadline=now[0] + 12, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    assert engine.attempts == 3
