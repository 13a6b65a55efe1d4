"""local.template reads template.yaml the way the local stack needs it; route matching picks the
resource API Gateway would; local.scheduler understands the template's schedule expressions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from local.scheduler import Cron, ScheduleExpressionError, Scheduler, Target, parse_rate
from local.template import ScheduleEvent, Tag, TemplateError, load_template, load_yaml, parse_template

FIXTURE = """
Parameters:
  Stage: {Type: String, Default: dev}
  Reserve: {Type: String, Default: "false"}
Conditions:
  IsDev: !Equals [!Ref Stage, dev]
Globals:
  Function: {Timeout: 7, MemorySize: 256, Handler: default.handler}
  Api:
    Auth:
      DefaultAuthorizer: Jwt
      Authorizers:
        Jwt:
          FunctionArn: !GetAtt AuthFn.Arn
          FunctionPayloadType: REQUEST
          Identity: {Headers: [X-Token], ReauthorizeEvery: 60}
Resources:
  AuthFn:
    Type: AWS::Serverless::Function
    Properties: {Handler: auth.handler.lambda_handler}
  ApiFn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: api.handler.lambda_handler
      Timeout: !If [IsDev, 20, 5]
      Events:
        Open: {Type: Api, Properties: {Path: "/things/{id}", Method: get, Auth: {Authorizer: NONE}}}
        All: {Type: Api, Properties: {Path: "/{proxy+}", Method: ANY}}
  WorkFn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: work.handler.lambda_handler
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: {"Fn::GetAtt": [WorkQueue, Arn]}
            BatchSize: 5
            MaximumBatchingWindowInSeconds: 2
            FunctionResponseTypes: [ReportBatchItemFailures]
        Tick:
          Type: ScheduleV2
          Properties: {ScheduleExpression: rate(5 minutes), Input: '{"job": "tick"}'}
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-work"
      VisibilityTimeout: 42
      DelaySeconds: 3
      RedrivePolicy: {deadLetterTargetArn: !GetAtt WorkDlq.Arn, maxReceiveCount: 4}
  WorkDlq:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub "${AWS::StackName}-work-dlq"}
  UnnamedQueue:
    Type: AWS::SQS::Queue
"""


def test_short_tags_load_as_tags():
    doc = load_yaml("a: !GetAtt X.Arn\nb: !Sub ['${A}', {A: 1}]\nc: !Ref Y\n")
    assert doc == {"a": Tag("GetAtt", "X.Arn"), "b": Tag("Sub", ["${A}", {"A": 1}]), "c": Tag("Ref", "Y")}


def test_fixture_template_is_read():
    template = parse_template(FIXTURE)
    api = template.function("ApiFn")
    assert api.handler == "api.handler.lambda_handler"
    assert (api.timeout, api.memory) == (20, 256)  # !If on a condition over a parameter default; Globals
    assert [(e.method, e.path, e.auth) for e in api.api_events] == [
        ("GET", "/things/{id}", "NONE"),
        ("ANY", "/{proxy+}", "default"),
    ]
    work = template.function("WorkFn")
    (sqs,) = work.sqs_events
    assert (sqs.queue, sqs.batch_size, sqs.maximum_batching_window, sqs.report_batch_item_failures) == (
        "work",
        5,
        2.0,
        True,
    )
    (schedule,) = work.schedule_events
    assert (schedule.expression, schedule.input) == ("rate(5 minutes)", {"job": "tick"})
    queue = template.queues["work"]
    assert (queue.visibility_timeout, queue.delay_seconds, queue.dlq, queue.max_receive_count) == (
        42,
        3,
        "work-dlq",
        4,
    )
    assert queue.arn == "arn:aws:sqs:us-east-1:000000000000:work"
    assert "unnamed" in template.queues  # named from the logical id
    assert template.authorizer is not None
    assert (template.authorizer.function, template.authorizer.identity_header, template.authorizer.ttl) == (
        "AuthFn",
        "X-Token",
        60,
    )
    assert template.dead_letter_queues == {"work-dlq": "work"}


def test_redrive_to_an_unknown_queue_is_an_error():
    broken = FIXTURE.replace("!GetAtt WorkDlq.Arn", "!GetAtt Missing.Arn")
    with pytest.raises(TemplateError, match="Missing"):
        parse_template(broken)


@pytest.mark.parametrize(
    ("method", "path", "resource", "params"),
    [
        ("GET", "/things/42", "/things/{id}", {"id": "42"}),
        ("DELETE", "/things/42", None, None),  # the resource wins; it has no DELETE; no fallback
        ("POST", "/other/deep/path", "/{proxy+}", {"proxy": "other/deep/path"}),
        ("GET", "/things", "/{proxy+}", {"proxy": "things"}),
        ("GET", "/", None, None),  # {proxy+} needs a segment
    ],
)
def test_route_matching_on_the_fixture(method, path, resource, params):
    match = parse_template(FIXTURE).match(method, path)
    if resource is None:
        assert match is None
    else:
        assert match is not None
        assert (match.route.resource, match.path_parameters) == (resource, params)


# ------------------------------------------------------------------------------ the real template


@pytest.fixture(scope="module")
def real():
    return load_template()


def test_real_template_functions_and_handlers(real):
    handlers = {name: fn.handler for name, fn in real.functions.items()}
    assert handlers["ApiFunction"] == "api.handler.lambda_handler"
    assert handlers["AuthorizerFunction"] == "authorizer.handler.lambda_handler"
    assert handlers["WebhookFunction"] == "webhook.handler.lambda_handler"
    for priority in ("High", "Default", "Low"):
        assert handlers[f"Processor{priority}Function"] == "processor.handler.lambda_handler"
        assert handlers[f"Sender{priority}Function"] == "sender.handler.lambda_handler"
        (events,) = real.functions[f"Processor{priority}Function"].sqs_events
        assert events.queue == f"events-{priority.lower()}"
        assert events.report_batch_item_failures
        (sends,) = real.functions[f"Sender{priority}Function"].sqs_events
        assert sends.queue == f"sends-{priority.lower()}"


def test_real_template_queues_have_dlqs(real):
    for kind in ("events", "sends"):
        for priority in ("high", "default", "low"):
            queue = real.queues[f"{kind}-{priority}"]
            assert queue.dlq == f"{kind}-{priority}-dlq"
            assert queue.dlq in real.queues
            assert queue.max_receive_count is not None
            assert queue.max_receive_count >= 1
            assert queue.visibility_timeout >= 30


def test_real_template_authorizer_and_cors(real):
    assert real.authorizer is not None
    assert real.authorizer.function == "AuthorizerFunction"
    assert real.authorizer.identity_header == "Authorization"
    assert real.authorizer.ttl == 300
    assert real.cors is not None


@pytest.mark.parametrize(
    ("method", "path", "function", "resource", "auth"),
    [
        ("GET", "/health", "ApiFunction", "/health", "NONE"),
        ("GET", "/openapi.json", "ApiFunction", "/openapi.json", "NONE"),
        ("GET", "/docs", "ApiFunction", "/docs", "NONE"),
        ("POST", "/v1/auth/login", "ApiFunction", "/v1/auth/{proxy+}", "NONE"),
        ("POST", "/v1/auth/password/forgot", "ApiFunction", "/v1/auth/{proxy+}", "NONE"),
        ("POST", "/v1/auth/password", "ApiFunction", "/v1/auth/password", "default"),
        ("POST", "/v1/invitations/accept", "ApiFunction", "/v1/invitations/accept", "NONE"),
        ("GET", "/v1/invitations", "ApiFunction", "/v1/{proxy+}", "default"),
        ("GET", "/v1/plans", "ApiFunction", "/v1/plans", "NONE"),
        ("GET", "/v1/accounts/oauth/callback", "ApiFunction", "/v1/accounts/oauth/callback", "NONE"),
        ("GET", "/v1/accounts", "ApiFunction", "/v1/{proxy+}", "default"),
        ("PATCH", "/v1/automations/abc", "ApiFunction", "/v1/{proxy+}", "default"),
        ("GET", "/webhooks/instagram", "WebhookFunction", "/webhooks/instagram", "NONE"),
        ("POST", "/webhooks/instagram", "WebhookFunction", "/webhooks/instagram", "NONE"),
    ],
)
def test_real_template_routes(real, method, path, function, resource, auth):
    match = real.match(method, path)
    assert match is not None
    assert (match.route.function.logical_id, match.route.resource, match.route.event.auth) == (
        function,
        resource,
        auth,
    )


def test_real_template_unrouted(real):
    assert real.match("GET", "/nowhere") is None
    assert real.match("PUT", "/webhooks/instagram") is None


def test_real_template_schedules_parse(real):
    events = real.function("JobsFunction").schedule_events
    assert {e.input["job"] for e in events} >= {"archive", "retention", "queue-metrics"}
    scheduler = Scheduler((event, lambda _e: None) for event in events)
    assert len(scheduler.schedules) == len([e for e in events if e.enabled])


# ------------------------------------------------------------------------------------ schedules


def test_rate_expressions():
    assert parse_rate("rate(1 minute)").total_seconds() == 60
    assert parse_rate("rate(6 hours)").total_seconds() == 6 * 3600
    assert parse_rate("rate(2 days)").total_seconds() == 2 * 86400
    assert parse_rate("cron(0 * * * ? *)") is None
    with pytest.raises(ScheduleExpressionError):
        parse_rate("rate(2 minute)")
    with pytest.raises(ScheduleExpressionError):
        parse_rate("rate(0 minutes)")


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 2 * * ? *)", datetime(2026, 3, 1, 2, 0), datetime(2026, 3, 2, 2, 0)),
        ("cron(0 * * * ? *)", datetime(2026, 3, 1, 2, 30), datetime(2026, 3, 1, 3, 0)),
        ("cron(0/15 * * * ? *)", datetime(2026, 3, 1, 2, 16), datetime(2026, 3, 1, 2, 30)),
        ("cron(30 9 ? * MON-FRI *)", datetime(2026, 11, 28, 12, 0), datetime(2026, 11, 30, 9, 30)),  # Sat
        ("cron(0 0 1 JAN,JUL ? *)", datetime(2026, 2, 10, 0, 0), datetime(2026, 7, 1, 0, 0)),
        ("cron(15 10 ? * 1 *)", datetime(2026, 11, 28, 0, 0), datetime(2026, 11, 29, 10, 15)),  # 1 = SUN
    ],
)
def test_cron_next_fire(expression, after, expected):
    assert Cron.parse(expression).next_after(after) == expected


@pytest.mark.parametrize(
    "expression",
    ["cron(0 2 * * * *)", "cron(0 2 * *)", "cron(0 2 L * ? *)", "cron(61 * * * ? *)", "every day"],
)
def test_bad_cron(expression):
    with pytest.raises(ScheduleExpressionError):
        Cron.parse(expression)


def test_scheduler_fires_due_schedules_with_their_input():
    now = [datetime(2026, 3, 1, 1, 59, 30, tzinfo=UTC)]
    fired: list[object] = []
    events = [
        ScheduleEvent("nightly", "cron(0 2 * * ? *)", {"job": "archive"}),
        ScheduleEvent("every-minute", "rate(1 minute)", {"job": "queue-metrics"}),
        ScheduleEvent("off", "rate(1 minute)", {"job": "off"}, enabled=False),
    ]
    scheduler = Scheduler(((e, fired.append) for e in events), now=lambda: now[0])
    assert scheduler.tick() == []
    now[0] = datetime(2026, 3, 1, 2, 0, 31, tzinfo=UTC)
    assert sorted(scheduler.tick()) == ["every-minute", "nightly"]
    assert scheduler.wait_running(5)
    assert sorted(e["job"] for e in fired) == ["archive", "queue-metrics"]
    assert scheduler.tick() == []  # both advanced past now


def test_failed_schedule_is_retried_then_dead_lettered():
    now = [datetime(2026, 3, 1, 0, 0, tzinfo=UTC)]
    calls: list[object] = []
    dead: list[tuple[object, str]] = []

    def invoke(event: object) -> None:
        calls.append(event)
        raise RuntimeError("database down")

    event = ScheduleEvent("nightly", "rate(1 hour)", {"job": "archive"}, maximum_retry_attempts=2)
    target = Target(event, invoke, lambda e, error: dead.append((e, str(error))))
    scheduler = Scheduler([target], now=lambda: now[0], retry_delay=0)
    now[0] = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    assert scheduler.tick() == ["nightly"]
    assert scheduler.wait_running(5)
    assert len(calls) == 3
    assert dead == [({"job": "archive"}, "database down")]


def test_real_template_jobs_dead_letter_queue(real):
    assert real.function("JobsFunction").dead_letter_queue == "jobs-dlq"
    assert real.function_dead_letter_queues == {"jobs-dlq": "JobsFunction"}
    assert max(e.maximum_retry_attempts for e in real.function("JobsFunction").schedule_events) >= 1
