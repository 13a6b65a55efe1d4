"""infra/console.yaml: the console's files in a private bucket read only by its CloudFront
distribution (origin access control), the API as a second origin under /v1/* and /webhooks/* (one
origin for the browser: no CORS), a year of caching for hashed assets and none for index.html, the
app's routes rewritten to index.html, CSP and HSTS from a response headers policy."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import resources_of

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
