"""What a first ``sam deploy`` needs beyond the shapes in test_app_stack: the schema custom resource
runs before the code that needs the tables, the app connects as a DML-only user (never the master),
every function logs to a group with retention, AWS WAF guards the stage, schedules keep a DLQ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from replyflow.services.schema_deploy import SchemaProperties
from tests.infra.conftest import ROOT, ref_target, resources_of, walk

MIGRATE = "MigrateFunction"


def _resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return template["Resources"]


def _app_functions(functions: dict[str, Any]) -> dict[str, Any]:
    return {name: fn for name, fn in functions.items() if name != MIGRATE}


def _depends_on(resource: dict[str, Any]) -> set[str]:
    value = resource.get("DependsOn") or []
    return {value} if isinstance(value, str) else set(value)


def _connect_user(function: dict[str, Any]) -> str | None:
    """The nested-stack output named as the user of the function's rds-db:connect statement."""
    for policy in function["Properties"]["Policies"]:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if statement["Action"] == "rds-db:connect":
                # The first resource is shard s0's proxy (the directory); the others are the shards'.
                first = (
                    statement["Resource"][0]
                    if isinstance(statement["Resource"], list)
                    else statement["Resource"]
                )
                user = first["Fn::Sub"][1]["User"]["Fn::GetAtt"]
                assert user[0] == "Database"
                return str(user[1]).removeprefix("Outputs.")
    return None


# --------------------------------------------------------------------- schema on deploy


def test_the_schema_resource_is_served_by_the_migrate_function(template: dict[str, Any]) -> None:
    schema = _resources(template)["DatabaseSchema"]
    assert schema["Type"] == "Custom::DatabaseSchema"
    props = schema["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": [MIGRATE, "Arn"]}
    # A new layer version (new migrations) changes the properties, so every such deploy re-runs it.
    assert ref_target(props["SchemaVersion"]) == "SharedLayer"
    assert props["IamAuth"] == "true"
    assert props["Host"] == {"Fn::GetAtt": ["Database", "Outputs.ProxyEndpoint"]}
    required = {f.alias for f in SchemaProperties.model_fields.values() if f.is_required()}
    assert required <= set(props)


def test_the_migrate_custom_resource_runs_before_every_function_that_needs_the_schema(
    functions: dict[str, Any],
) -> None:
    for name, fn in _app_functions(functions).items():
        assert "DatabaseSchema" in _depends_on(fn), name
    assert "DatabaseSchema" not in _depends_on(functions[MIGRATE])


def test_only_the_migrate_function_reads_the_database_secrets(functions: dict[str, Any]) -> None:
    database_secrets = {"Outputs.DatabaseSecretArn", "Outputs.AppUserSecretArn"}
    readers = set()
    for name, fn in functions.items():
        for node in walk(fn["Properties"]["Policies"]):
            if isinstance(node, dict) and node.get("Action") == "secretsmanager:GetSecretValue":
                # A shard's secrets are ``Fn::If [HasShardN, GetAtt, NoValue]``: the GetAtt counts.
                refs = [r["Fn::If"][1] if "Fn::If" in r else r for r in node["Resource"]]
                outputs = {ref["Fn::GetAtt"][1] for ref in refs if "Fn::GetAtt" in ref}
                if outputs & database_secrets:
                    readers.add(name)
                    assert outputs == database_secrets
    assert readers == {MIGRATE}


def test_the_app_connects_as_the_non_master_user(
    template: dict[str, Any], functions: dict[str, Any], nested: dict[str, Any]
) -> None:
    database = nested["database"]
    params = database["Parameters"]
    assert params["DatabaseUser"]["Default"] != params["MasterUser"]["Default"]
    assert ref_target(database["Outputs"]["DatabaseUser"]["Value"]) == "DatabaseUser"
    assert ref_target(database["Outputs"]["MasterUser"]["Value"]) == "MasterUser"
    secrets = resources_of(database, "AWS::SecretsManager::Secret")
    template_of = {
        lid: s["Properties"]["GenerateSecretString"]["SecretStringTemplate"]["Fn::Sub"]
        for lid, s in secrets.items()
    }
    assert template_of == {
        "DatabaseSecret": '{"username": "${MasterUser}"}',
        "AppUserSecret": '{"username": "${DatabaseUser}"}',
    }
    # The cluster's master is the master secret's user.
    cluster = next(iter(resources_of(database, "AWS::RDS::DBCluster").values()))
    assert "${DatabaseSecret}:SecretString:username" in json.dumps(cluster["Properties"]["MasterUsername"])

    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    for key in ("DATABASE_URL", "DATABASE_READER_URL"):
        user = variables[key]["Fn::Sub"][1]["User"]
        assert user == {"Fn::GetAtt": ["Database", "Outputs.DatabaseUser"]}, key
    assert variables["DATABASE_IAM_AUTH"] == "true"
    for name, fn in _app_functions(functions).items():
        assert _connect_user(fn) == "DatabaseUser", name
    assert _connect_user(functions[MIGRATE]) == "MasterUser"


# --------------------------------------------------------------------- logs and traces


def test_every_function_has_its_own_log_group_with_retention(
    template: dict[str, Any], functions: dict[str, Any]
) -> None:
    groups = resources_of(template, "AWS::Logs::LogGroup")
    assert template["Globals"]["Function"]["LoggingConfig"]["LogFormat"] == "JSON"
    used = []
    for name, fn in functions.items():
        group = ref_target(fn["Properties"]["LoggingConfig"]["LogGroup"])
        assert group in groups, name
        assert ref_target(groups[str(group)]["Properties"]["RetentionInDays"]) == "LogRetentionDays", name
        used.append(group)
    assert len(used) == len(set(used)) == len(functions)
    names = [json.dumps(groups[str(g)]["Properties"]["LogGroupName"]) for g in used]
    assert len(set(names)) == len(names)
    assert "LogRetentionDays" in template["Parameters"]


def test_every_handler_is_wrapped_by_the_tracer_without_capturing_responses(
    template: dict[str, Any], functions: dict[str, Any]
) -> None:
    assert template["Globals"]["Function"]["Tracing"] == "Active"
    for name, fn in functions.items():
        module = fn["Properties"]["Handler"].rsplit(".", 1)[0]
        source = Path(ROOT, "functions", *module.split(".")).with_suffix(".py").read_text()
        # Responses hold tokens and IAM policies: they never go into trace metadata.
        assert "@tracer.capture_lambda_handler(capture_response=False)\n" in source, name
        assert "Tracing" not in fn["Properties"], name


# --------------------------------------------------------------------- AWS WAF


def _not_the_webhook(statement: dict[str, Any]) -> bool:
    either = statement["NotStatement"]["Statement"]["OrStatement"]["Statements"]
    matches = [s["ByteMatchStatement"] for s in either]
    assert {m["PositionalConstraint"] for m in matches} == {"EXACTLY"}  # no suffix can borrow it
    assert all(m["FieldToMatch"] == {"UriPath": {}} for m in matches)
    return {m["SearchString"] for m in matches} == {"/webhooks/instagram", "/live/webhooks/instagram"}


def _scoped_past_the_webhook(statement: dict[str, Any]) -> bool:
    return _not_the_webhook(statement["ScopeDownStatement"])


def _through_the_console(statement: dict[str, Any]) -> bool:
    """The request bears the console distribution's secret origin header, compared exactly with the
    generated secret (a dynamic reference: the value is not in the template)."""
    match = statement["ByteMatchStatement"]
    assert match["FieldToMatch"] == {"SingleHeader": {"Name": "x-replyflow-origin"}}  # WAF wants lowercase
    assert match["PositionalConstraint"] == "EXACTLY"
    assert [t["Type"] for t in match["TextTransformations"]] == ["NONE"]
    return bool(match["SearchString"] == {"Fn::Sub": SECRET_REFERENCE})


SECRET_REFERENCE = "{{resolve:secretsmanager:${ConsoleOriginSecret}:SecretString}}"


def _rate_rules(props: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["Name"]: r for r in props["Rules"] if "RateBasedStatement" in r["Statement"]}


def test_waf_guards_the_api_stage_with_managed_rules_and_a_rate_limit(template: dict[str, Any]) -> None:
    (acl_id, acl), *others = resources_of(template, "AWS::WAFv2::WebACL").items()
    assert not others
    props = acl["Properties"]
    assert props["Scope"] == "REGIONAL"
    assert props["DefaultAction"] == {"Allow": {}}
    managed = {
        r["Statement"]["ManagedRuleGroupStatement"]["Name"]: r
        for r in props["Rules"]
        if "ManagedRuleGroupStatement" in r["Statement"]
    }
    assert set(managed) == {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"}
    for rule in managed.values():
        assert rule["OverrideAction"] == {"None": {}}  # the groups block; they do not just count
        # Meta's webhook bodies (people's comments) are not inspected by body rules; the console's
        # requests are (the same rules as every other client's).
        assert _scoped_past_the_webhook(rule["Statement"]["ManagedRuleGroupStatement"])
    rates = _rate_rules(props)
    assert set(rates) == {"RateLimitPerIp", "RateLimitPerConsoleViewerIp"}
    for rate in rates.values():
        statement = rate["Statement"]["RateBasedStatement"]
        assert ref_target(statement["Limit"]) == "WafRateLimitPerIp"
        assert statement["EvaluationWindowSec"] == 300
        assert rate["Action"] == {"Block": {}}
    assert len({r["Priority"] for r in props["Rules"]}) == len(props["Rules"])

    (association,) = resources_of(template, "AWS::WAFv2::WebACLAssociation").values()
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    arn = association["Properties"]["ResourceArn"]["Fn::Sub"]
    assert arn.endswith("::/restapis/${RestApi}/stages/${RestApi.Stage}")


def test_the_stage_counts_console_traffic_by_the_viewers_ip_and_everyone_else_by_theirs(
    template: dict[str, Any],
) -> None:
    """Behind CloudFront the stage sees an edge address that many viewers share. Requests bearing the
    distribution's secret are counted by X-Replyflow-Viewer-Ip (set by the distribution, replacing a
    viewer's value); every other request by its source IP, whatever headers it sends."""
    (acl,) = resources_of(template, "AWS::WAFv2::WebACL").values()
    rates = _rate_rules(acl["Properties"])
    by_ip = rates["RateLimitPerIp"]["Statement"]["RateBasedStatement"]
    assert by_ip["AggregateKeyType"] == "IP"
    assert "ForwardedIPConfig" not in by_ip  # a direct caller cannot pick the address it is counted by
    webhook, not_console = by_ip["ScopeDownStatement"]["AndStatement"]["Statements"]
    assert _not_the_webhook(webhook)
    assert _through_the_console(not_console["NotStatement"]["Statement"])

    by_viewer = rates["RateLimitPerConsoleViewerIp"]["Statement"]["RateBasedStatement"]
    assert by_viewer["AggregateKeyType"] == "FORWARDED_IP"
    assert by_viewer["ForwardedIPConfig"] == {
        "HeaderName": "X-Replyflow-Viewer-Ip",
        "FallbackBehavior": "MATCH",
    }
    webhook, console = by_viewer["ScopeDownStatement"]["AndStatement"]["Statements"]
    assert _not_the_webhook(webhook)
    assert _through_the_console(console)  # the header is trusted only with the secret


def test_the_console_origin_secret_is_generated_and_read_only_by_the_api_function(
    template: dict[str, Any], functions: dict[str, Any]
) -> None:
    secret = template["Resources"]["ConsoleOriginSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["PasswordLength"] >= 32
    assert generated["ExcludePunctuation"] is True  # a header value and a WAF search string
    assert "SecretString" not in secret["Properties"]  # no value in the template
    # The distribution gets the secret's ARN, never its value; CloudFormation resolves it there.
    params = template["Resources"]["Console"]["Properties"]["Parameters"]
    assert params["OriginSecretArn"] == {"Ref": "ConsoleOriginSecret"}
    assert "{{resolve:" not in json.dumps(params)
    # Least privilege: CloudFormation resolves it at deploy; the API function reads it at run time
    # (its per-IP limits; test_app_stack checks its IAM statement). Nothing else names it: no other
    # function's policies or environment, no role, no output.
    users = {
        logical_id
        for logical_id, resource in template["Resources"].items()
        if "ConsoleOriginSecret" in json.dumps(resource)
    }
    assert users == {"Console", "WebAcl", "ApiFunction"}
    assert set(functions) & users == {"ApiFunction"}
    assert "{{resolve:" not in json.dumps(functions["ApiFunction"])
    assert "ConsoleOriginSecret" not in json.dumps(template.get("Outputs", {}))


# --------------------------------------------------------------------- schedules


def test_every_schedule_has_a_dead_letter_queue(functions: dict[str, Any], queues: dict[str, Any]) -> None:
    checked = 0
    for fn in functions.values():
        for name, event in (fn["Properties"].get("Events") or {}).items():
            if event["Type"] != "ScheduleV2":
                continue
            dlq = ref_target(event["Properties"]["DeadLetterConfig"]["Arn"])
            assert dlq == "SchedulerDeadLetterQueue", name
            checked += 1
    assert checked >= 6
    assert queues["SchedulerDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


# --------------------------------------------------------------------- no hand steps


def test_the_stack_sets_api_gateways_cloudwatch_role_before_the_stage(template: dict[str, Any]) -> None:
    """Stage logs need the account's CloudWatch role; the stack sets it (retained: other stacks in the
    account rely on it too). SAM puts the Api's DependsOn on the RestApi it generates, and the stage
    references that RestApi, so the stage is created after the account setting."""
    resources = _resources(template)
    account = resources["ApiGatewayAccount"]
    assert account["Type"] == "AWS::ApiGateway::Account"
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    role = resources["ApiGatewayCloudWatchRole"]
    assert role["Type"] == "AWS::IAM::Role"
    principals = [
        s["Principal"]["Service"] for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    ]
    assert principals == ["apigateway.amazonaws.com"]
    managed = json.dumps(role["Properties"]["ManagedPolicyArns"])
    assert "service-role/AmazonAPIGatewayPushToCloudWatchLogs" in managed
    assert "RoleName" not in role["Properties"], "a fixed name would collide between stacks"
    for resource in (account, role):
        assert resource["DeletionPolicy"] == "Retain"
        assert resource["UpdateReplacePolicy"] == "Retain"
    assert "ApiGatewayAccount" in _depends_on(resources["RestApi"])
    assert "AccessLogSetting" in resources["RestApi"]["Properties"]


def test_a_first_deploy_needs_no_public_base_url(template: dict[str, Any], functions: dict[str, Any]) -> None:
    """PublicBaseUrl is optional: without it the outputs name the execute-api URLs. Without
    OAuthRedirectUrl the functions get an empty OAUTH_REDIRECT_URI and the API redirects to the
    console's callback page (test_console_stack: the console URL is derived)."""
    parameter = template["Parameters"]["PublicBaseUrl"]
    assert parameter["Default"] == ""
    import re

    assert re.fullmatch(parameter["AllowedPattern"], "")
    assert re.fullmatch(parameter["AllowedPattern"], "https://api.example.com")
    redirect = template["Globals"]["Function"]["Environment"]["Variables"]["OAUTH_REDIRECT_URI"]
    assert redirect == {"Fn::If": ["HasOAuthRedirectUrl", {"Ref": "OAuthRedirectUrl"}, ""]}
    # No function's configuration may name the API (a circular dependency).
    for name, fn in functions.items():
        assert "RestApi" not in {ref_target(node) for node in walk(fn["Properties"].get("Environment"))}, name
        assert "${RestApi}" not in json.dumps(fn["Properties"].get("Environment")), name
    outputs = template["Outputs"]
    for key, path in (
        ("ApiUrl", ""),
        ("WebhookUrl", "/webhooks/instagram"),
        ("DeauthorizeCallbackUrl", "/v1/deauthorize"),
        ("DataDeletionCallbackUrl", "/v1/data-deletion"),
    ):
        condition, _custom, execute_api = outputs[key]["Value"]["Fn::If"]
        assert condition == "HasPublicBaseUrl"
        assert execute_api == {
            "Fn::Sub": "https://${RestApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/live" + path
        }, key
    oauth_output = outputs["OAuthRedirectUri"]["Value"]["Fn::If"][2]["Fn::If"][2]
    assert oauth_output == {"Fn::Sub": "${Console.Outputs.ConsoleUrl}/accounts/callback"}


def test_samconfig_sets_no_public_base_url() -> None:
    text = (ROOT / "samconfig.toml").read_text()
    assert '  "PublicBaseUrl=' not in text
    assert "SecretsVersion" not in text


def test_the_senders_domain_is_an_ses_identity_with_dkim_when_named(template: dict[str, Any]) -> None:
    resources = _resources(template)
    identity = resources["MailIdentity"]
    assert identity["Type"] == "AWS::SES::EmailIdentity"
    assert identity["Condition"] == "HasMailDomain"
    assert identity["Properties"]["EmailIdentity"] == {"Ref": "MailDomain"}
    records = resources["MailDkimRecords"]
    assert records["Condition"] == "WritesDkimRecords"
    names = [r["Name"]["Fn::GetAtt"] for r in records["Properties"]["RecordSets"]]
    assert names == [["MailIdentity", f"DkimDNSTokenName{i}"] for i in (1, 2, 3)]
    assert template["Outputs"]["MailDkimRecords"]["Condition"] == "HasMailDomain"
