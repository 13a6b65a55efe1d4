"""infra/console.yaml: the console's files in a private bucket read only by its CloudFront
distribution (origin access control), the API as a second origin under /v1/* and /webhooks/* (one
origin for the browser: no CORS), a year of caching for hashed assets and none for index.html, the
app's routes rewritten to index.html, CSP and HSTS from a response headers policy, an AWS WAF web ACL
at the edge, the origin secret and viewer IP the API stage's web ACL counts console traffic by, and the
distribution's URL flowing to the API without a second deploy."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest

from tests.infra.conftest import ROOT, ref_target, resources_of, walk

CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"


@pytest.fixture(scope="module")
def console(nested: dict[str, Any]) -> dict[str, Any]:
    return nested["console"]


@pytest.fixture(scope="module")
def config(console: dict[str, Any]) -> dict[str, Any]:
    (distribution,) = resources_of(console, "AWS::CloudFront::Distribution").values()
    return dict(distribution["Properties"]["DistributionConfig"])


def _behaviors(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "default": config["DefaultCacheBehavior"],
        **{b["PathPattern"]: b for b in config["CacheBehaviors"]},
    }


def test_the_bucket_is_private_and_read_only_by_the_distribution(
    console: dict[str, Any], config: dict[str, Any]
) -> None:
    (bucket,) = resources_of(console, "AWS::S3::Bucket").values()
    assert all(bucket["Properties"]["PublicAccessBlockConfiguration"].values())
    (policy,) = resources_of(console, "AWS::S3::BucketPolicy").values()
    allow, deny = policy["Properties"]["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    assert "distribution/${Distribution}" in allow["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    s3_origin = next(o for o in config["Origins"] if o["Id"] == "console")
    assert s3_origin["OriginAccessControlId"] == {"Fn::GetAtt": ["OriginAccessControl", "Id"]}


def test_the_api_is_the_second_origin_uncached_with_every_viewer_header(config: dict[str, Any]) -> None:
    api = next(o for o in config["Origins"] if o["Id"] == "api")
    assert api["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert api["OriginPath"] == {"Fn::Sub": "/${ApiStage}"}
    behaviors = _behaviors(config)
    for pattern in ("/v1/*", "/webhooks/*"):
        behavior = behaviors[pattern]
        assert behavior["TargetOriginId"] == "api"
        assert behavior["CachePolicyId"] == CACHING_DISABLED
        assert behavior["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST
        assert {"POST", "PATCH", "DELETE", "OPTIONS"} <= set(behavior["AllowedMethods"])


def test_assets_are_cached_for_a_year_and_index_html_never(
    console: dict[str, Any], config: dict[str, Any]
) -> None:
    behaviors = _behaviors(config)
    assert behaviors["default"]["CachePolicyId"] == CACHING_DISABLED
    assert behaviors["/assets/*"]["CachePolicyId"] == {"Ref": "AssetsCachePolicy"}
    policy = console["Resources"]["AssetsCachePolicy"]["Properties"]["CachePolicyConfig"]
    assert policy["MinTTL"] == policy["DefaultTTL"] == 31536000
    for behavior in behaviors.values():
        assert behavior["ViewerProtocolPolicy"] in {"redirect-to-https", "https-only"}


def test_the_apps_routes_are_index_html(console: dict[str, Any], config: dict[str, Any]) -> None:
    (association,) = config["DefaultCacheBehavior"]["FunctionAssociations"]
    assert association["EventType"] == "viewer-request"
    code = console["Resources"]["SpaRewriteFunction"]["Properties"]["FunctionCode"]
    assert "request.uri = '/index.html'" in code
    # Custom error responses would turn the API's JSON 403/404 into the app's HTML: none.
    assert "CustomErrorResponses" not in config


def test_api_requests_carry_the_origin_secret_and_the_viewers_own_ip(
    console: dict[str, Any], config: dict[str, Any]
) -> None:
    """What the API stage's web ACL needs to count console traffic per viewer (test_deploy.py): the
    secret, from Secrets Manager by ARN (no value in either template), on every request to the API
    origin, and the viewer's IP in X-Replyflow-Viewer-Ip on every /v1/* request."""
    secret = console["Parameters"]["OriginSecretArn"]
    assert secret["Type"] == "String"
    assert "Default" not in secret
    api = next(o for o in config["Origins"] if o["Id"] == "api")
    assert api["OriginCustomHeaders"] == [
        {
            "HeaderName": "X-Replyflow-Origin",
            "HeaderValue": {"Fn::Sub": "{{resolve:secretsmanager:${OriginSecretArn}:SecretString}}"},
        }
    ]
    (association,) = _behaviors(config)["/v1/*"]["FunctionAssociations"]
    assert association["EventType"] == "viewer-request"
    assert association["FunctionARN"] == {"Fn::GetAtt": ["ViewerIpFunction", "FunctionMetadata.FunctionARN"]}
    function = console["Resources"]["ViewerIpFunction"]["Properties"]
    assert function["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    assert function["AutoPublish"] is True


def test_the_viewer_ip_function_replaces_what_a_viewer_sent(console: dict[str, Any]) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    code = console["Resources"]["ViewerIpFunction"]["Properties"]["FunctionCode"]
    event = {
        "viewer": {"ip": "2001:db8::7"},
        "request": {
            "uri": "/v1/me",
            "headers": {
                "x-replyflow-viewer-ip": {"value": "203.0.113.9"},
                "x-forwarded-for": {"value": "198.51.100.1"},
            },
        },
    }
    script = f"{code}\nprocess.stdout.write(JSON.stringify(handler({json.dumps(event)})));"
    result = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30, check=True)
    request = json.loads(result.stdout)
    assert request["headers"]["x-replyflow-viewer-ip"] == {"value": "2001:db8::7"}
    assert request["headers"]["x-forwarded-for"] == {"value": "198.51.100.1"}  # left alone
    assert request["uri"] == "/v1/me"


def test_csp_and_hsts_come_from_a_response_headers_policy(
    console: dict[str, Any], config: dict[str, Any]
) -> None:
    headers = console["Resources"]["SecurityHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]
    security = headers["SecurityHeadersConfig"]
    csp = security["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "connect-src 'self'"):
        assert directive in csp
    assert security["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    behaviors = _behaviors(config)
    assert behaviors["default"]["ResponseHeadersPolicyId"] == {"Ref": "SecurityHeadersPolicy"}
    assert behaviors["/assets/*"]["ResponseHeadersPolicyId"] == {"Ref": "SecurityHeadersPolicy"}


def test_the_app_stack_wires_the_api_and_outputs_the_console(template: dict[str, Any]) -> None:
    console = template["Resources"]["Console"]["Properties"]
    assert console["Location"] == "infra/console.yaml"
    assert "${RestApi}.execute-api" in console["Parameters"]["ApiDomainName"]["Fn::Sub"]
    outputs = template["Outputs"]
    assert {"ConsoleUrl", "ConsoleBucketName", "ConsoleDistributionId"} <= set(outputs)


def test_a_cloudfront_web_acl_guards_the_edge_by_default(
    console: dict[str, Any], config: dict[str, Any]
) -> None:
    params = console["Parameters"]
    assert params["WebAcl"]["Default"] == "enabled"
    (acl_id, acl), *others = resources_of(console, "AWS::WAFv2::WebACL").items()
    assert not others
    # CloudFront-scope ACLs live in us-east-1 only: off by parameter, or in another Region.
    assert acl["Condition"] == "HasWebAcl"
    condition = json.dumps(console["Conditions"]["HasWebAcl"])
    assert '"WebAcl"' in condition
    assert "us-east-1" in condition
    assert config["WebACLId"] == {
        "Fn::If": ["HasWebAcl", {"Fn::GetAtt": [acl_id, "Arn"]}, {"Ref": "AWS::NoValue"}]
    }
    props = acl["Properties"]
    assert props["Scope"] == "CLOUDFRONT"
    assert props["DefaultAction"] == {"Allow": {}}
    rules = {r["Name"]: r for r in props["Rules"]}
    # The webhooks first, allowed (a terminating action): signed bodies of people's comments and DMs
    # that body rules would trip on, and a blocked delivery is retried and holds up its batch.
    first = min(props["Rules"], key=lambda r: r["Priority"])
    assert (first["Name"], first["Action"]) == ("AllowTheWebhooks", {"Allow": {}})
    paths = first["Statement"]["OrStatement"]["Statements"]
    assert {p["ByteMatchStatement"]["PositionalConstraint"] for p in paths} == {"EXACTLY"}
    assert {p["ByteMatchStatement"]["SearchString"] for p in paths} == {
        "/webhooks/instagram",
        "/webhooks/stripe",
    }
    common = rules["AwsCommonRules"]
    assert common["OverrideAction"] == {"None": {}}
    group = common["Statement"]["ManagedRuleGroupStatement"]
    assert (group["VendorName"], group["Name"]) == ("AWS", "AWSManagedRulesCommonRuleSet")
    rate = rules["RateLimitPerIp"]
    statement = rate["Statement"]["RateBasedStatement"]
    assert rate["Action"] == {"Block": {}}
    assert statement["AggregateKeyType"] == "IP"
    assert statement["Limit"] == {"Ref": "RateLimitPerIp"}
    assert len({r["Priority"] for r in props["Rules"]}) == len(props["Rules"])


def test_the_app_stack_passes_the_web_acl_switch_and_its_rate_limit(template: dict[str, Any]) -> None:
    params = template["Resources"]["Console"]["Properties"]["Parameters"]
    assert params["WebAcl"] == {"Ref": "ConsoleWebAcl"}
    assert params["RateLimitPerIp"] == {"Ref": "WafRateLimitPerIp"}
    assert template["Parameters"]["ConsoleWebAcl"]["Default"] == "enabled"


def test_the_console_url_reaches_the_api_without_a_second_deploy(
    template: dict[str, Any], functions: dict[str, Any]
) -> None:
    """ConsoleBaseUrl and OAuthRedirectUrl are optional: the distribution's URL goes to an SSM
    parameter the API reads at run time. The API function cannot name the distribution (which names
    the API) without a circular dependency, so it names the parameter by its path."""
    parameter = template["Parameters"]["ConsoleBaseUrl"]
    assert parameter["Default"] == ""
    assert re.fullmatch(parameter["AllowedPattern"], "")
    assert re.fullmatch(parameter["AllowedPattern"], "https://app.example.com")
    ssm = template["Resources"]["ConsoleBaseUrlParameter"]
    assert ssm["Type"] == "AWS::SSM::Parameter"
    assert ssm["Condition"] == "DerivesConsoleBaseUrl"
    assert ssm["Properties"]["Value"] == {"Fn::GetAtt": ["Console", "Outputs.ConsoleUrl"]}
    name = ssm["Properties"]["Name"]["Fn::Sub"]
    api = functions["ApiFunction"]["Properties"]
    env = api["Environment"]["Variables"]
    assert env["CONSOLE_BASE_URL_PARAMETER"]["Fn::If"][2] == {"Fn::Sub": name}
    assert env["CONSOLE_BASE_URL"]["Fn::If"][:2] == ["HasConsoleBaseUrl", {"Ref": "ConsoleBaseUrl"}]
    assert env["OAUTH_REDIRECT_TO_CONSOLE"] == {"Fn::If": ["HasOAuthRedirectUrl", "false", "true"]}
    targets = {ref_target(node) for node in walk(api)}
    assert "Console" not in targets
    assert "ConsoleBaseUrlParameter" not in targets
    statements = [s for p in api["Policies"] if isinstance(p, dict) for s in p.get("Statement", [])]
    (read,) = [s for s in statements if s.get("Action") == "ssm:GetParameter"]
    assert read["Resource"]["Fn::Sub"].endswith(":parameter" + name)
    assert template["Outputs"]["ConsoleBaseUrl"]["Value"]["Fn::If"][2] == {
        "Fn::GetAtt": ["Console", "Outputs.ConsoleUrl"]
    }
    assert '  "ConsoleBaseUrl=' not in (ROOT / "samconfig.toml").read_text()
