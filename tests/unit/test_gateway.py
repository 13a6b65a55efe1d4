"""The local gateway turns HTTP requests into API Gateway REST proxy events, runs the REQUEST
authorizer like API Gateway (401/403, cached policy per identity value), and maps proxy responses and
failures. Called through ``LocalGateway.handle``: no sockets."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from local import metrics_store
from local.broker import Broker
from local.gateway import HttpRequest, LocalGateway, policy_allows
from local.lambda_context import LambdaFunction
from local.template import parse_template

TEMPLATE = """
Resources:
  RestApi:
    Type: AWS::Serverless::Api
    Properties:
      StageName: live
      Cors: {AllowOrigin: "'*'", AllowHeaders: "'Authorization,Content-Type'", AllowMethods: "'GET,POST'"}
      Auth:
        DefaultAuthorizer: Req
        Authorizers:
          Req:
            FunctionArn: !GetAtt AuthorizerFunction.Arn
            FunctionPayloadType: REQUEST
            Identity: {Headers: [Authorization], ReauthorizeEvery: 300}
  AuthorizerFunction:
    Type: AWS::Serverless::Function
    Properties: {Handler: tests.fake.authorizer, Timeout: 5}
  ApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fake.api
      Timeout: 15
      MemorySize: 1024
      Events:
        Open: {Type: Api, Properties: {Path: /open, Method: ANY, Auth: {Authorizer: NONE}}}
        Item: {Type: Api, Properties: {Path: "/v1/items/{id}", Method: GET}}
        Rest: {Type: Api, Properties: {Path: "/v1/{proxy+}", Method: ANY}}
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-work"
      RedrivePolicy: {deadLetterTargetArn: !GetAtt WorkDlq.Arn, maxReceiveCount: 1}
  WorkDlq:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub "${AWS::StackName}-work-dlq"}
"""


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Api:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.response: Any = {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "ok"}
        self.error: Exception | None = None

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        if self.error:
            raise self.error
        return self.response


class Authorizer:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.result: dict[str, Any] = self.policy("Allow", "*")
        self.error: Exception | None = None

    @staticmethod
    def policy(effect: str, resource: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "principalId": "user-1",
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
            },
            "context": context if context is not None else {"tenant_id": "t-1", "admin": True, "n": 3},
        }

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        if self.error:
            raise self.error
        return self.result


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def authorizer() -> Authorizer:
    return Authorizer()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def broker() -> Broker:
    return Broker(parse_template(TEMPLATE).queues.values())


@pytest.fixture
def gateway(api: Api, authorizer: Authorizer, clock: FakeClock, broker: Broker) -> LocalGateway:
    template = parse_template(TEMPLATE)
    functions = {
        "ApiFunction": LambdaFunction(template.function("ApiFunction"), api),
        "AuthorizerFunction": LambdaFunction(template.function("AuthorizerFunction"), authorizer),
    }
    return LocalGateway(template, functions, broker=broker, clock=clock)


def request(method: str, target: str, body: bytes = b"", **headers: str) -> HttpRequest:
    pairs = [(name.replace("_", "-"), value) for name, value in headers.items()]
    return HttpRequest(method, target, pairs, body, "10.1.2.3")


def test_proxy_event_shape(gateway, api):
    response = gateway.handle(
        HttpRequest(
            "POST",
            "/open?a=1&b=2&b=3",
            [("Content-Type", "application/json"), ("X-Multi", "1"), ("X-Multi", "2")],
            b'{"x": "\xc3\xa9"}',
            "10.1.2.3",
        )
    )
    assert response.status == 200
    assert response.body == b"ok"
    (event,) = api.events
    assert event["resource"] == "/open"
    assert event["path"] == "/open"
    assert event["httpMethod"] == "POST"
    assert event["queryStringParameters"] == {"a": "1", "b": "3"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1"], "b": ["2", "3"]}
    assert event["headers"]["X-Multi"] == "2"
    assert event["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert event["body"] == '{"x": "é"}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["identity"]["sourceIp"] == "10.1.2.3"
    assert context["resourcePath"] == "/open"
    assert context["httpMethod"] == "POST"
    assert context["requestId"]
    assert "authorizer" not in context  # an open route has no authorizer context
    lambda_context = api.contexts[0]
    assert lambda_context.function_name == "ApiFunction"
    assert lambda_context.memory_limit_in_mb == 1024
    assert lambda_context.invoked_function_arn.endswith(":function:ApiFunction")
    assert 0 < lambda_context.get_remaining_time_in_millis() <= 15000


def test_non_utf8_body_is_base64_and_bytes_survive(gateway, api):
    raw = b"\xff\x00\xfe signed bytes"
    gateway.handle(request("POST", "/open", raw))
    event = api.events[0]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_empty_body_is_null(gateway, api):
    gateway.handle(request("GET", "/open"))
    assert api.events[0]["body"] is None
    assert api.events[0]["queryStringParameters"] is None


def test_path_parameters_and_most_specific_route(gateway, api, authorizer):
    gateway.handle(request("GET", "/v1/items/a%20b", Authorization="Bearer x"))
    gateway.handle(request("GET", "/v1/items/a/b", Authorization="Bearer x"))
    assert api.events[0]["resource"] == "/v1/items/{id}"
    assert api.events[0]["pathParameters"] == {"id": "a b"}
    assert api.events[1]["resource"] == "/v1/{proxy+}"
    assert api.events[1]["pathParameters"] == {"proxy": "items/a/b"}


def test_response_mapping(gateway, api):
    api.response = {
        "statusCode": 201,
        "headers": {"X-One": "1", "Set-Cookie": "ignored"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": base64.b64encode(b"\x89PNG").decode(),
        "isBase64Encoded": True,
    }
    response = gateway.handle(request("GET", "/open"))
    assert response.status == 201
    assert response.body == b"\x89PNG"
    assert ("X-One", "1") in response.headers
    assert [v for k, v in response.headers if k == "Set-Cookie"] == ["a=1", "b=2"]


def test_a_204_goes_out_without_the_body_a_json_serializer_gave_it(gateway, api):
    api.response = {"statusCode": 204, "headers": {"Content-Type": "application/json"}, "body": "null"}
    response = gateway.handle(request("GET", "/open"))
    assert response.status == 204
    assert response.body == b""


@pytest.mark.parametrize("bad", [None, "text", {"body": "no status"}, {"statusCode": "200"}])
def test_malformed_proxy_response_is_502(gateway, api, bad):
    api.response = bad
    response = gateway.handle(request("GET", "/open"))
    assert response.status == 502
    assert response.json()["error"]["code"] == "internal_error"


def test_handler_exception_is_502_in_the_error_shape(gateway, api):
    api.error = RuntimeError("kaput")
    response = gateway.handle(request("GET", "/open"))
    assert response.status == 502
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "ApiFunction failed; see the local stack log",
            "details": None,
        }
    }


SECRETS = {
    "code": "AQBx-oauth-code",
    "state": "csrf-state-1",
    "hub.verify_token": "verify-me",
    "access_token": "IGQ-access",
    "client_secret": "app-secret",
    "token": "plain-token",
}


def test_log_lines_redact_secrets_in_the_query_string(gateway, api, caplog):
    query = "&".join(f"{name}={value}" for name, value in SECRETS.items())
    target = f"/open?hub.mode=subscribe&{query}&Code=AQB-upper&hub.challenge=42"
    with caplog.at_level(logging.INFO, logger="local.gateway"):
        assert gateway.handle(request("GET", target)).status == 200
        api.error = RuntimeError("kaput")
        assert gateway.handle(request("GET", target)).status == 502
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert len(caplog.records) == 3  # two access lines, one handler failure
    for value in [*SECRETS.values(), "AQB-upper"]:
        assert value not in logged
    assert "hub.verify_token=REDACTED" in logged
    assert "hub.mode=subscribe" in logged
    assert "hub.challenge=42" in logged
    # The function still gets the real values.
    assert api.events[0]["queryStringParameters"]["hub.verify_token"] == "verify-me"


def test_unknown_route_is_404(gateway):
    response = gateway.handle(request("GET", "/nope"))
    assert response.status == 404
    assert response.json()["error"] == {
        "code": "not_found",
        "message": "No route for GET /nope",
        "details": None,
    }
    assert gateway.handle(request("DELETE", "/v1/items/1", Authorization="x")).status == 404


def test_missing_identity_header_is_401_without_calling_the_authorizer(gateway, authorizer, api):
    response = gateway.handle(request("GET", "/v1/things"))
    assert response.status == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert authorizer.events == []
    assert api.events == []


def test_authorizer_event_and_allow_context(gateway, authorizer, api):
    response = gateway.handle(request("GET", "/v1/things?q=1", Authorization="Bearer good"))
    assert response.status == 200
    (event,) = authorizer.events
    assert event["type"] == "REQUEST"
    assert event["methodArn"] == "arn:aws:execute-api:us-east-1:000000000000:local/local/GET/v1/things"
    assert event["resource"] == "/v1/{proxy+}"
    assert event["path"] == "/v1/things"
    assert event["httpMethod"] == "GET"
    assert event["headers"]["Authorization"] == "Bearer good"
    assert event["queryStringParameters"] == {"q": "1"}
    assert event["requestContext"]["resourcePath"] == "/v1/{proxy+}"
    authorizer_context = api.events[0]["requestContext"]["authorizer"]
    assert authorizer_context["principalId"] == "user-1"
    assert authorizer_context["tenant_id"] == "t-1"
    assert authorizer_context["admin"] == "true"  # REST APIs pass context values as strings
    assert authorizer_context["n"] == "3"


def test_unauthorized_exception_is_401_and_other_failures_500(gateway, authorizer):
    authorizer.error = Exception("Unauthorized")
    assert gateway.handle(request("GET", "/v1/x", Authorization="bad")).status == 401
    authorizer.error = ValueError("bug")
    response = gateway.handle(request("GET", "/v1/x", Authorization="other"))
    assert response.status == 500
    assert response.json()["error"]["code"] == "internal_error"


def test_invalid_authorizer_response_is_500(gateway, authorizer):
    authorizer.result = {
        "principalId": "u",
        "policyDocument": {"Statement": []},
        "context": {"nested": {"a": 1}},
    }
    assert gateway.handle(request("GET", "/v1/x", Authorization="t")).status == 500


def test_deny_is_403(gateway, authorizer, api):
    authorizer.result = Authorizer.policy("Deny", "*")
    response = gateway.handle(request("GET", "/v1/x", Authorization="t"))
    assert response.status == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert api.events == []


def test_policy_is_cached_per_identity_for_the_ttl(gateway, authorizer, clock):
    for _ in range(3):
        assert gateway.handle(request("GET", "/v1/x", Authorization="t")).status == 200
    assert len(authorizer.events) == 1
    gateway.handle(request("GET", "/v1/x", Authorization="another"))
    assert len(authorizer.events) == 2
    clock.now += 301
    gateway.handle(request("GET", "/v1/x", Authorization="t"))
    assert len(authorizer.events) == 3


def test_cached_policy_for_one_arn_denies_another_route(gateway, authorizer):
    """The AWS gotcha the cache reproduces: a policy naming only the first method ARN."""
    arn = "arn:aws:execute-api:us-east-1:000000000000:local/local/GET/v1/first"
    authorizer.result = Authorizer.policy("Allow", arn)
    assert gateway.handle(request("GET", "/v1/first", Authorization="t")).status == 200
    assert gateway.handle(request("GET", "/v1/second", Authorization="t")).status == 403
    assert len(authorizer.events) == 1


def test_policy_evaluation():
    arn = "arn:aws:execute-api:us-east-1:000000000000:local/local/GET/v1/x"
    allow_all = {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:*"}
    deny_get = {"Action": "execute-api:*", "Effect": "Deny", "Resource": ["*/GET/*"]}
    assert policy_allows([allow_all], arn)
    assert not policy_allows([allow_all, deny_get], arn)
    assert not policy_allows([], arn)
    assert not policy_allows([{**allow_all, "Action": "s3:GetObject"}], arn)


def test_cors_preflight_skips_the_authorizer(gateway, authorizer, api):
    response = gateway.handle(request("OPTIONS", "/v1/things"))
    assert response.status == 200
    headers = dict(response.headers)
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Headers"] == "Authorization,Content-Type"
    assert authorizer.events == []
    assert api.events == []


def test_local_control_routes(gateway, broker):
    broker.send("work", "poison")
    (record,) = broker.receive("work")
    assert record["body"] == "poison"
    broker.purge("work")  # not yet failed: nothing in the DLQ
    assert gateway.handle(request("GET", "/_local/dlq/work")).json() == {"queue": "work", "messages": []}
    queues = gateway.handle(request("GET", "/_local/queues")).json()
    assert queues["queues"]["work"]["dlq_name"] == "work-dlq"
    assert queues["idle"] is True
    assert gateway.handle(request("POST", "/_local/dlq/work-dlq/redrive")).json() == {
        "queue": "work-dlq",
        "moved": 0,
    }
    sent = gateway.handle(request("POST", "/_local/queues/work/messages?delay=5", b"raw body")).json()
    assert sent["queue"] == "work"
    assert broker.stats()["work"]["delayed"] == 1
    assert gateway.handle(request("POST", "/_local/queues/nope/messages", b"x")).status == 404
    assert gateway.handle(request("GET", "/_local/dlq/missing")).status == 404
    assert gateway.handle(request("GET", "/_local/nothing")).status == 404


def test_local_metrics_route(gateway):
    metrics_store.clear()
    metrics_store.record("QueueDepth", 3, "Count", {"Queue": "events-high"})
    metrics_store.record("QueueDepth", 5, "Count", {"Queue": "events-high"})
    (series,) = gateway.handle(request("GET", "/_local/metrics")).json()["metrics"]
    assert series["name"] == "QueueDepth"
    assert (series["count"], series["sum"], series["last"], series["max"]) == (2, 8, 5, 5)
    assert series["dimensions"] == {"Queue": "events-high"}
    metrics_store.clear()
    assert json.loads(gateway.handle(request("GET", "/_local/metrics")).body) == {"metrics": []}


@pytest.mark.parametrize("method", ["FOO", "PROPFIND", "TRACE", "CONNECT"])
def test_methods_api_gateway_does_not_know_are_405_in_the_error_shape(gateway, api, method):
    response = gateway.handle(request(method, "/open"))
    assert response.status == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert ("Allow", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT") in response.headers
    assert api.events == []


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses_drop_whatever_body_the_function_returned(gateway, api, status):
    api.response = {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": "null"}
    response = gateway.handle(request("GET", "/open"))
    assert (response.status, response.body) == (status, b"")
