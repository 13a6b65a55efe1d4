"""Invariants of template.yaml: the contract the local stack reads, and the template shape rules."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from replyflow.services.send_reply import SEND_LEASE_SECONDS
from tests.infra.conftest import ref_target, resources_of

HANDLERS = {
    "ApiFunction": "api.handler.lambda_handler",
    "AuthorizerFunction": "authorizer.handler.lambda_handler",
    "WebhookFunction": "webhook.handler.lambda_handler",
    "ProcessorHighFunction": "processor.handler.lambda_handler",
    "ProcessorDefaultFunction": "processor.handler.lambda_handler",
    "ProcessorLowFunction": "processor.handler.lambda_handler",
    "SenderHighFunction": "sender.handler.lambda_handler",
    "SenderDefaultFunction": "sender.handler.lambda_handler",
    "SenderLowFunction": "sender.handler.lambda_handler",
    "JobsFunction": "jobs.handler.lambda_handler",
    "MigrateFunction": "migrate.handler.lambda_handler",
}
WORKER_QUEUES = {
    "ProcessorHighFunction": "EventsHighQueue",
    "ProcessorDefaultFunction": "EventsDefaultQueue",
    "ProcessorLowFunction": "EventsLowQueue",
    "SenderHighFunction": "SendsHighQueue",
    "SenderDefaultFunction": "SendsDefaultQueue",
    "SenderLowFunction": "SendsLowQueue",
}
LOGICAL_QUEUE_NAMES = {
    "EventsHighQueue": "events-high",
    "EventsDefaultQueue": "events-default",
    "EventsLowQueue": "events-low",
    "SendsHighQueue": "sends-high",
    "SendsDefaultQueue": "sends-default",
    "SendsLowQueue": "sends-low",
}
JOBS = {
    "archive": "cron(0 2 * * ? *)",
    "retention": "cron(0 3 * * ? *)",
    "token-refresh": "cron(0 4 * * ? *)",
    "usage-rollover": "cron(0 * * * ? *)",
    "queue-metrics": "rate(1 minute)",
    "webhook-subscriptions": "rate(6 hours)",
    "reconcile-comments": "rate(15 minutes)",
    "ledger-sweep": "rate(5 minutes)",
    "partitions": "cron(30 1 * * ? *)",
    "flow-timers": "rate(1 minute)",
}
SETTINGS_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
    "ENVIRONMENT",
    "DATABASE_URL",
    "DATABASE_READER_URL",
    "REDIS_URL",
    "QUEUE_URLS",
    "ARCHIVE_BUCKET",
    "GRAPH_API_BASE_URL",
    "INSTAGRAM_APP_ID",
    "OAUTH_REDIRECT_URI",
}


def _globals(template: dict[str, Any]) -> dict[str, Any]:
    return template["Globals"]["Function"]


def _sqs_events(function: dict[str, Any]) -> dict[str, dict[str, Any]]:
    events = function["Properties"].get("Events") or {}
    return {name: event for name, event in events.items() if event["Type"] == "SQS"}


def _setting(template: dict[str, Any], function: dict[str, Any], key: str) -> Any:
    return function["Properties"].get(key, _globals(template).get(key))


def test_globals_match_the_contract(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    fn = _globals(template)
    assert fn["Runtime"] == "python3.11"
    assert fn["Architectures"] == ["arm64"]
    assert fn["Tracing"] == "Active"
    assert fn["Layers"] == [{"Ref": "SharedLayer"}]
    variables = fn["Environment"]["Variables"]
    assert set(variables) >= SETTINGS_ENV
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Replyflow"
    assert variables["PYDANTIC_DISABLE_PLUGINS"] == "__all__"  # no entry-point scan at a cold start


def test_queue_urls_is_a_json_object_of_every_queue(template: dict[str, Any]) -> None:
    raw = _globals(template)["Environment"]["Variables"]["QUEUE_URLS"]["Fn::Sub"]
    parsed = json.loads(re.sub(r"\$\{(\w+)\}", r"<\1>", raw))
    assert parsed == {name: f"<{logical}>" for logical, name in LOGICAL_QUEUE_NAMES.items()}


def test_shared_layer_is_built_from_requirements(template: dict[str, Any]) -> None:
    layer = template["Resources"]["SharedLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/shared/"
    assert layer["Metadata"]["BuildMethod"] == "python3.11"


def test_every_function_has_the_contract_handler_and_code_uri(functions: dict[str, Any]) -> None:
    assert {name: fn["Properties"]["Handler"] for name, fn in functions.items()} == HANDLERS
    for fn in functions.values():
        assert fn["Properties"]["CodeUri"] == "functions/"


def test_every_function_states_timeout_and_memory_as_integers(functions: dict[str, Any]) -> None:
    for name, fn in functions.items():
        props = fn["Properties"]
        assert isinstance(props.get("Timeout"), int), name
        assert isinstance(props.get("MemorySize"), int), name
        assert 128 <= props["MemorySize"] <= 10240, name


def test_every_function_has_its_own_role(functions: dict[str, Any]) -> None:
    # No shared Role: SAM then generates one role per function from that function's Policies.
    for name, fn in functions.items():
        assert "Role" not in fn["Properties"], name
        assert fn["Properties"].get("Policies"), name


def test_every_function_runs_in_the_private_subnets(
    template: dict[str, Any], functions: dict[str, Any]
) -> None:
    for name, fn in functions.items():
        vpc = _setting(template, fn, "VpcConfig")
        assert vpc, name
        assert "PrivateSubnetIds" in json.dumps(vpc["SubnetIds"]), name


def test_every_sqs_trigger_reports_batch_item_failures(functions: dict[str, Any]) -> None:
    for name, fn in functions.items():
        for event in _sqs_events(fn).values():
            props = event["Properties"]
            assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
            assert props["BatchSize"] == 10, name
            assert isinstance(props["ScalingConfig"]["MaximumConcurrency"], int), name


def test_workers_consume_their_priority_queue(functions: dict[str, Any]) -> None:
    consumed = {
        name: ref_target(event["Properties"]["Queue"])
        for name, fn in functions.items()
        for event in _sqs_events(fn).values()
    }
    assert consumed == WORKER_QUEUES


@pytest.mark.parametrize("kind", ["Processor", "Sender"])
def test_high_priority_gets_more_concurrency(functions: dict[str, Any], kind: str) -> None:
    def max_concurrency(priority: str) -> int:
        (event,) = _sqs_events(functions[f"{kind}{priority}Function"]).values()
        return int(event["Properties"]["ScalingConfig"]["MaximumConcurrency"])

    assert max_concurrency("High") > max_concurrency("Default") > max_concurrency("Low") >= 2


@pytest.mark.parametrize("kind", ["Processor", "Sender"])
def test_priority_workers_are_one_package(functions: dict[str, Any], kind: str) -> None:
    shapes = {
        (fn["Properties"]["Handler"], fn["Properties"]["Timeout"], fn["Properties"]["MemorySize"])
        for name, fn in functions.items()
        if name.startswith(kind)
    }
    assert len(shapes) == 1


def test_queue_names_follow_the_local_stack_convention(queues: dict[str, Any]) -> None:
    for logical_id, queue in queues.items():
        name = queue["Properties"]["QueueName"]["Fn::Sub"]
        assert name.startswith("${AWS::StackName}-"), logical_id
    names = {lid: q["Properties"]["QueueName"]["Fn::Sub"].split("-", 1)[1] for lid, q in queues.items()}
    for logical_id, logical_name in LOGICAL_QUEUE_NAMES.items():
        assert names[logical_id] == logical_name
        assert names[logical_id.replace("Queue", "DeadLetterQueue")] == f"{logical_name}-dlq"


def test_every_work_queue_has_its_dead_letter_queue(queues: dict[str, Any]) -> None:
    work_queues = {lid: q for lid, q in queues.items() if not lid.endswith("DeadLetterQueue")}
    assert set(LOGICAL_QUEUE_NAMES) <= set(work_queues)
    for logical_id, queue in work_queues.items():
        policy = queue["Properties"].get("RedrivePolicy")
        assert policy, f"{logical_id} has no RedrivePolicy"
        dlq = ref_target(policy["deadLetterTargetArn"])
        assert dlq == logical_id.replace("Queue", "DeadLetterQueue"), logical_id
        assert dlq in queues
        assert policy["maxReceiveCount"] == 5
        assert queues[dlq]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_queue_settings_the_local_stack_reads_are_literals(queues: dict[str, Any]) -> None:
    for logical_id, queue in queues.items():
        props = queue["Properties"]
        for key in ("VisibilityTimeout", "DelaySeconds"):
            if key in props:
                assert isinstance(props[key], int), (logical_id, key)
        if "RedrivePolicy" in props:
            assert isinstance(props["RedrivePolicy"]["maxReceiveCount"], int), logical_id


def test_every_queue_is_encrypted(queues: dict[str, Any]) -> None:
    for logical_id, queue in queues.items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, logical_id


def test_visibility_timeout_is_six_times_the_consumer_timeout(
    template: dict[str, Any], functions: dict[str, Any], queues: dict[str, Any]
) -> None:
    checked = 0
    for fn in functions.values():
        timeout = _setting(template, fn, "Timeout")
        for event in _sqs_events(fn).values():
            queue = queues[str(ref_target(event["Properties"]["Queue"]))]
            assert queue["Properties"]["VisibilityTimeout"] >= 6 * timeout
            checked += 1
    assert checked == len(WORKER_QUEUES)


def test_the_send_lease_outlives_a_live_sender_and_ends_before_a_redelivery(
    template: dict[str, Any], functions: dict[str, Any], queues: dict[str, Any]
) -> None:
    """A row stays ``sending`` for the lease: a live sender (at most its Timeout) must not lose it, and
    a job redelivered after the visibility timeout must find it past the lease (a dead worker's row is
    then settled ``unknown``, not left ``sending``)."""
    senders = {n: fn for n, fn in functions.items() if HANDLERS[n] == "sender.handler.lambda_handler"}
    assert len(senders) == 3
    for name, fn in senders.items():
        assert _setting(template, fn, "Timeout") < SEND_LEASE_SECONDS, name
        for event in _sqs_events(fn).values():
            queue = queues[str(ref_target(event["Properties"]["Queue"]))]
            assert queue["Properties"]["VisibilityTimeout"] > SEND_LEASE_SECONDS, name


def test_jobs_are_scheduled_with_their_input(functions: dict[str, Any]) -> None:
    events = functions["JobsFunction"]["Properties"]["Events"]
    scheduled = {}
    for name, event in events.items():
        assert event["Type"] == "ScheduleV2", name
        assert re.fullmatch(r"(?:[A-Z][a-z]+)+Schedule", name), name
        job = json.loads(event["Properties"]["Input"])["job"]
        scheduled[job] = event["Properties"]["ScheduleExpression"]
    assert scheduled == JOBS


def test_failed_jobs_are_kept(functions: dict[str, Any], queues: dict[str, Any]) -> None:
    dlq = functions["JobsFunction"]["Properties"]["DeadLetterQueue"]
    assert dlq["Type"] == "SQS"
    assert ref_target(dlq["TargetArn"]) in queues


def test_authorizer_is_a_cached_request_authorizer(template: dict[str, Any]) -> None:
    auth = template["Resources"]["RestApi"]["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert ref_target(authorizer["FunctionArn"]) == "AuthorizerFunction"
    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert authorizer["Identity"]["Headers"] == ["Authorization"]
    assert authorizer["Identity"]["ReauthorizeEvery"] == 300


def test_only_the_public_routes_skip_the_authorizer(functions: dict[str, Any]) -> None:
    routes = {}
    for name in ("ApiFunction", "WebhookFunction"):
        for event in functions[name]["Properties"]["Events"].values():
            props = event["Properties"]
            assert ref_target(props["RestApiId"]) == "RestApi"
            routes[(props["Method"].upper(), props["Path"])] = (props.get("Auth") or {}).get("Authorizer")
    assert routes == {
        ("GET", "/health"): "NONE",
        ("GET", "/openapi.json"): "NONE",
        ("GET", "/docs"): "NONE",
        ("ANY", "/v1/auth/{proxy+}"): "NONE",
        ("POST", "/v1/auth/password"): None,  # a password change needs the session
        ("POST", "/v1/invitations/accept"): "NONE",  # a new invitee has no session yet
        ("GET", "/v1/plans"): "NONE",
        ("GET", "/v1/accounts/oauth/callback"): "NONE",
        # Meta's callbacks: the signed_request is the credential; the status page is public.
        ("POST", "/v1/data-deletion"): "NONE",
        ("GET", "/v1/data-deletion/{code}"): "NONE",
        ("POST", "/v1/deauthorize"): "NONE",
        ("ANY", "/v1/{proxy+}"): None,
        ("GET", "/webhooks/instagram"): "NONE",
        ("POST", "/webhooks/instagram"): "NONE",
        ("POST", "/webhooks/stripe"): "NONE",  # Stripe-Signature is the check (docs/billing.md)
    }


def test_api_stage_has_throttling_access_logs_and_tracing(template: dict[str, Any]) -> None:
    props = template["Resources"]["RestApi"]["Properties"]
    assert props["TracingEnabled"] is True
    assert ref_target(props["AccessLogSetting"]["DestinationArn"]) == "ApiAccessLogGroup"
    json.loads(props["AccessLogSetting"]["Format"])
    stage_wide = next(s for s in props["MethodSettings"] if s["ResourcePath"] == "/*")
    assert "ThrottlingRateLimit" in stage_wide
    assert "ThrottlingBurstLimit" in stage_wide


def test_no_inert_usage_plans_plan_limits_are_enforced_by_the_api_function(
    template: dict[str, Any], functions: dict[str, Any]
) -> None:
    # Usage plans apply only to methods with ApiKeyRequired and never see JWT sessions; the per-plan
    # per-minute and monthly limits live in the API function (services.rate_limit_api) instead.
    for kind in ("AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::UsagePlanKey", "AWS::ApiGateway::ApiKey"):
        assert not resources_of(template, kind), kind
    assert "ApiKeySourceType" not in template["Resources"]["RestApi"]["Properties"]
    for name, function in functions.items():
        assert "USAGE_PLAN_KEYS" not in function["Properties"].get("Environment", {}).get("Variables", {}), (
            name
        )


def test_no_deployed_function_offers_the_sandbox_tools(template: dict[str, Any]) -> None:
    # SANDBOX_TOOLS (a test comment from the console) is for the local stack's sandbox only; the
    # settings refuse it in dev and prod, and the template never names it, not even as false.
    assert "SANDBOX_TOOLS" not in json.dumps(template).upper()


def test_reserved_concurrency_covers_the_database_bound_workers(functions: dict[str, Any]) -> None:
    for name in (*WORKER_QUEUES, "JobsFunction"):
        reserved = functions[name]["Properties"]["ReservedConcurrentExecutions"]
        enabled = reserved["Fn::If"][1]
        assert isinstance(enabled, int), name
        for event in _sqs_events(functions[name]).values():
            # Reserved below MaximumConcurrency would throttle the poller instead of capping it.
            assert enabled >= event["Properties"]["ScalingConfig"]["MaximumConcurrency"], name


def _statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in function["Properties"]["Policies"]:
        if isinstance(policy, dict) and "Statement" in policy:
            out.extend(policy["Statement"])
    return out


def _sqs_send_targets(function: dict[str, Any]) -> set[str | None]:
    return {
        ref_target(policy["SQSSendMessagePolicy"]["QueueName"])
        for policy in function["Properties"]["Policies"]
        if isinstance(policy, dict) and "SQSSendMessagePolicy" in policy
    }


def test_publishers_may_send_only_to_the_queues_they_publish_to(functions: dict[str, Any]) -> None:
    events = {"EventsHighQueue", "EventsDefaultQueue", "EventsLowQueue"}
    sends = {"SendsHighQueue", "SendsDefaultQueue", "SendsLowQueue"}
    assert _sqs_send_targets(functions["WebhookFunction"]) == events
    for name in WORKER_QUEUES:
        assert _sqs_send_targets(functions[name]) == sends, name
    assert _sqs_send_targets(functions["ApiFunction"]) == sends  # re-queue parked sends on reconnect
    # reconcile-comments feeds missed comments; ledger-sweep republishes lost send jobs
    assert _sqs_send_targets(functions["JobsFunction"]) == events | sends
    for name in ("AuthorizerFunction", "MigrateFunction"):
        assert _sqs_send_targets(functions[name]) == set(), name


def test_only_the_consumers_change_visibility_and_only_on_their_own_queue(functions: dict[str, Any]) -> None:
    """The retry backoff (services/sqs_batch.py) calls ChangeMessageVisibility on failed records."""
    for name, fn in functions.items():
        grants = [
            statement
            for statement in _statements(fn)
            if "sqs:ChangeMessageVisibility" in _actions(statement) or "sqs:*" in _actions(statement)
        ]
        if name not in WORKER_QUEUES:
            assert grants == [], name
            continue
        (grant,) = grants
        assert _actions(grant) == ["sqs:ChangeMessageVisibility"], name
        assert grant["Effect"] == "Allow"
        assert ref_target(grant["Resource"]) == WORKER_QUEUES[name], name
        (event,) = _sqs_events(fn).values()
        assert ref_target(event["Properties"]["Queue"]) == WORKER_QUEUES[name], name


def test_database_access_is_iam_auth_to_one_proxy_user(functions: dict[str, Any]) -> None:
    for name, fn in functions.items():
        connect = [s for s in _statements(fn) if s["Action"] == "rds-db:connect"]
        assert len(connect) == 1, name
        resource = json.dumps(connect[0]["Resource"])
        assert "dbuser:${ProxyId}/${User}" in resource, name


def test_only_jobs_touch_the_archive_bucket(functions: dict[str, Any]) -> None:
    for name, fn in functions.items():
        s3 = [s for s in _statements(fn) if any(str(a).startswith("s3:") for a in _actions(s))]
        assert bool(s3) == (name == "JobsFunction"), name


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else list(actions)


def _resources_of(statement: dict[str, Any]) -> list[Any]:
    resources = statement.get("Resource", [])
    return resources if isinstance(resources, list) else [resources]


SECRET_SETTINGS = {
    "INSTAGRAM_APP_SECRET",
    "META_APP_SECRET",
    "INSTAGRAM_APP_SECRET_SECONDARY",
    "INSTAGRAM_VERIFY_TOKEN",
    "TOKEN_ENCRYPTION_KEY",
    "TOKEN_ENCRYPTION_PREVIOUS_KEYS",
    "JWT_SIGNING_KEYS",
    "JWT_ACTIVE_KID",
}
APP_SECRET = {"Fn::GetAtt": ["Storage", "Outputs.AppSecretArn"]}
REDIS_SECRET = {"Fn::GetAtt": ["Cache", "Outputs.AuthSecretArn"]}
# The console distribution's X-Replyflow-Origin: the API function's per-IP limits trust the viewer's IP
# only on a request bearing it (adapters/console_origin.py).
ORIGIN_SECRET = {"Ref": "ConsoleOriginSecret"}
DATABASE_SECRETS = [
    {"Fn::GetAtt": ["Database", "Outputs.DatabaseSecretArn"]},
    {"Fn::GetAtt": ["Database", "Outputs.AppUserSecretArn"]},
] + [
    # The tenant shards' (docs/scaling.md#database-sharding), when ShardCount creates them.
    {
        "Fn::If": [
            f"HasShard{i}",
            {"Fn::GetAtt": [f"DatabaseShard{i}", f"Outputs.{secret}"]},
            {"Ref": "AWS::NoValue"},
        ]
    }
    for i in (1, 2, 3)
    for secret in ("DatabaseSecretArn", "AppUserSecretArn")
]
# What each function reads at run time, and nothing more.
SECRETS_READ: dict[str, list[Any]] = {
    "ApiFunction": [APP_SECRET, REDIS_SECRET, ORIGIN_SECRET],
    "AuthorizerFunction": [APP_SECRET, REDIS_SECRET],
    "WebhookFunction": [APP_SECRET, REDIS_SECRET],
    "ProcessorHighFunction": [APP_SECRET, REDIS_SECRET],  # Stripe's events ride events-high
    "ProcessorDefaultFunction": [REDIS_SECRET],
    "ProcessorLowFunction": [REDIS_SECRET],
    "SenderHighFunction": [APP_SECRET, REDIS_SECRET],
    "SenderDefaultFunction": [APP_SECRET, REDIS_SECRET],
    "SenderLowFunction": [APP_SECRET, REDIS_SECRET],
    "JobsFunction": [APP_SECRET, REDIS_SECRET],
    "MigrateFunction": DATABASE_SECRETS,
}


def _environment(template: dict[str, Any], fn: dict[str, Any]) -> dict[str, Any]:
    """A function's variables as SAM deploys them: the Globals' merged under its own."""
    merged = dict(_globals(template)["Environment"]["Variables"])
    merged.update(fn["Properties"].get("Environment", {}).get("Variables", {}))
    return merged


def test_no_function_environment_holds_a_secret(template: dict[str, Any], functions: dict[str, Any]) -> None:
    for name, fn in functions.items():
        variables = _environment(template, fn)
        assert "{{resolve:" not in json.dumps(variables), name
        assert not SECRET_SETTINGS & set(variables), name
        # The Redis AUTH token is read from its secret and passed as the password, not in the URL.
        assert "@" not in json.dumps(variables["REDIS_URL"]), name
    assert "SecretsVersion" not in template["Parameters"]


def test_each_function_may_read_only_the_secrets_it_uses(functions: dict[str, Any]) -> None:
    assert set(SECRETS_READ) == set(functions)
    for name, fn in functions.items():
        reads = [s for s in _statements(fn) if "secretsmanager:GetSecretValue" in _actions(s)]
        assert len(reads) == 1, name
        assert _actions(reads[0]) == ["secretsmanager:GetSecretValue"], name
        resources = reads[0]["Resource"]
        assert (resources if isinstance(resources, list) else [resources]) == SECRETS_READ[name], name
        other = [s for s in _statements(fn) if any(a.startswith("secretsmanager:") for a in _actions(s))]
        assert other == reads, name


def test_a_function_is_configured_with_exactly_the_secrets_its_role_reads(
    template: dict[str, Any], functions: dict[str, Any]
) -> None:
    for name, fn in functions.items():
        variables = _environment(template, fn)
        keys = ("APP_SECRETS_ARN", "REDIS_AUTH_SECRET_ARN", "CONSOLE_ORIGIN_SECRET_ARN")
        named = [variables[key] for key in keys if key in variables]
        expected = [s for s in SECRETS_READ[name] if s in (APP_SECRET, REDIS_SECRET, ORIGIN_SECRET)]
        assert named == expected, name


def test_only_the_api_function_reads_the_console_origin_secret(
    template: dict[str, Any], functions: dict[str, Any]
) -> None:
    # Its ARN in the environment (never the value: no dynamic reference in any function), and the
    # one GetSecretValue statement naming exactly that ARN among the API's own secrets.
    readers = {
        name for name, fn in functions.items() if "CONSOLE_ORIGIN_SECRET_ARN" in _environment(template, fn)
    }
    assert readers == {"ApiFunction"}
    api = functions["ApiFunction"]
    assert _environment(template, api)["CONSOLE_ORIGIN_SECRET_ARN"] == ORIGIN_SECRET
    statements = [s for s in _statements(api) if ORIGIN_SECRET in _resources_of(s)]
    assert [(s["Sid"], s["Effect"], _actions(s)) for s in statements] == [
        ("ReadSecrets", "Allow", ["secretsmanager:GetSecretValue"])
    ]
    assert "*" not in json.dumps(statements)
    for name, fn in functions.items():
        if name != "ApiFunction":
            assert all(ORIGIN_SECRET not in _resources_of(s) for s in _statements(fn)), name


def test_dynamic_references_fit_cloudformations_limit(
    template: dict[str, Any], functions: dict[str, Any]
) -> None:
    # SAM copies Globals into every function, so each global reference counts once per function.
    def count(value: Any) -> int:
        return json.dumps(value).count("{{resolve:")

    global_refs = count(_globals(template)) * len(functions)
    other_refs = count({k: v for k, v in template.items() if k != "Globals"})
    assert global_refs + other_refs <= 60


def test_gateway_made_errors_keep_the_one_error_shape(template: dict[str, Any]) -> None:
    responses = template["Resources"]["RestApi"]["Properties"]["GatewayResponses"]
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "UNAUTHORIZED", "ACCESS_DENIED"} <= set(responses)
    for name, response in responses.items():
        body = response["ResponseTemplates"]["application/json"]
        # $context variables are substituted as JSON strings; a placeholder stands in for them here.
        error = json.loads(body.replace("$context.error.messageString", '"m"'))["error"]
        assert set(error) == {"code", "message", "details"}, name


def test_the_ledger_sweeps_thresholds_follow_the_sends_queues(
    functions: dict[str, Any], queues: dict[str, Any]
) -> None:
    """The sweeper republishes a queued row's job only after a redelivery had its chance, so it must
    know the sends queues' visibility timeout; and the jobs function must be allowed to publish."""
    from replyflow.services.jobs.ledger_sweep import SENDS_VISIBILITY_TIMEOUT_SECONDS

    sends = {name: q for name, q in queues.items() if name.startswith("Sends") and "DeadLetter" not in name}
    assert len(sends) == 3
    for name, queue in sends.items():
        assert queue["Properties"]["VisibilityTimeout"] == SENDS_VISIBILITY_TIMEOUT_SECONDS, name
    assert set(sends) <= _sqs_send_targets(functions["JobsFunction"])
