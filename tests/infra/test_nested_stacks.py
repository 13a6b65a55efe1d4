"""Invariants of the stateful nested stacks under infra/ and of their wiring into template.yaml."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.infra.conftest import INFRA_DIR, ROOT, ref_target, resources_of, walk

DATA_SERVICES = ("s3:", "sqs:", "secretsmanager:", "kms:", "rds-db:", "dynamodb:", "elasticache:", "ssm:")


def _one(doc: dict[str, Any], resource_type: str) -> dict[str, Any]:
    (resource,) = resources_of(doc, resource_type).values()
    return resource


def test_every_nested_stack_is_a_local_template(template: dict[str, Any]) -> None:
    apps = resources_of(template, "AWS::Serverless::Application")
    assert {app["Properties"]["Location"] for app in apps.values()} == {
        f"infra/{name}.yaml"
        for name in ("network", "database", "cache", "storage", "observability", "console")
    }
    for app in apps.values():
        assert (ROOT / app["Properties"]["Location"]).is_file()


def test_nested_parameters_and_outputs_are_wired(template: dict[str, Any], nested: dict[str, Any]) -> None:
    apps = resources_of(template, "AWS::Serverless::Application")
    by_logical_id = {lid: nested[app["Properties"]["Location"][6:-5]] for lid, app in apps.items()}
    for logical_id, app in apps.items():
        child = by_logical_id[logical_id]
        declared = child.get("Parameters") or {}
        passed = app["Properties"].get("Parameters") or {}
        assert set(passed) <= set(declared), logical_id
        required = {name for name, spec in declared.items() if "Default" not in spec}
        assert required <= set(passed), logical_id
    used = set()
    for node in walk(template):
        if isinstance(node, dict) and "Fn::GetAtt" in node and node["Fn::GetAtt"][0] in apps:
            stack, attribute = node["Fn::GetAtt"][0], node["Fn::GetAtt"][1]
            used.add((stack, attribute.removeprefix("Outputs.")))
        if isinstance(node, dict) and "Fn::Sub" in node:
            raw = node["Fn::Sub"] if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"][0]
            used.update(re.findall(r"\$\{(\w+)\.Outputs\.(\w+)\}", raw))
    assert used
    for stack, output in used:
        assert output in (by_logical_id[stack].get("Outputs") or {}), f"{stack}.Outputs.{output}"


def test_network_has_private_subnets_and_egress(nested: dict[str, Any]) -> None:
    network = nested["network"]
    subnets = resources_of(network, "AWS::EC2::Subnet")
    assert {"PrivateSubnetA", "PrivateSubnetB"} <= set(subnets)
    azs = {json.dumps(s["Properties"]["AvailabilityZone"]) for lid, s in subnets.items() if "Private" in lid}
    assert len(azs) == 2
    assert resources_of(network, "AWS::EC2::NatGateway")
    routes = resources_of(network, "AWS::EC2::Route")
    private_routes = [r for lid, r in routes.items() if lid.startswith("PrivateDefaultRoute")]
    assert len(private_routes) == 2
    assert all("NatGatewayId" in r["Properties"] for r in private_routes)


def test_secrets_manager_is_reached_through_an_interface_endpoint(nested: dict[str, Any]) -> None:
    network = nested["network"]
    endpoints = resources_of(network, "AWS::EC2::VPCEndpoint")
    (props,) = [
        e["Properties"]
        for e in endpoints.values()
        if "secretsmanager" in json.dumps(e["Properties"]["ServiceName"])
    ]
    assert props["VpcEndpointType"] == "Interface"
    assert props["PrivateDnsEnabled"] is True  # the SDK's default endpoint resolves to it
    assert props["SubnetIds"] == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]
    (group,) = props["SecurityGroupIds"]
    ingress = network["Resources"][group["Ref"]]["Properties"]["SecurityGroupIngress"]
    assert [(r["FromPort"], r["SourceSecurityGroupId"]) for r in ingress] == [
        (443, {"Ref": "LambdaSecurityGroup"})
    ]


def test_aurora_is_serverless_v2_with_writer_reader_and_backups(nested: dict[str, Any]) -> None:
    database = nested["database"]
    cluster = _one(database, "AWS::RDS::DBCluster")
    props = cluster["Properties"]
    assert props["Engine"] == "aurora-mysql"
    assert "ServerlessV2ScalingConfiguration" in props
    assert props["StorageEncrypted"] is True
    assert ref_target(props["BackupRetentionPeriod"]) == "BackupRetentionDays"
    assert database["Parameters"]["BackupRetentionDays"]["MinValue"] >= 1
    assert ref_target(props["DeletionProtection"]) == "DeletionProtection"
    assert database["Parameters"]["DeletionProtection"]["Default"] == "true"
    assert cluster["DeletionPolicy"] == "Snapshot"
    assert cluster["UpdateReplacePolicy"] == "Snapshot"
    instances = resources_of(database, "AWS::RDS::DBInstance").values()
    assert sorted(i["Properties"]["PromotionTier"] for i in instances) == [0, 1]
    assert {i["Properties"]["DBInstanceClass"] for i in instances} == {"db.serverless"}
    assert all(i["Properties"]["PubliclyAccessible"] is False for i in instances)


def test_rds_proxy_requires_iam_and_tls_and_has_a_reader_endpoint(nested: dict[str, Any]) -> None:
    database = nested["database"]
    proxy = _one(database, "AWS::RDS::DBProxy")["Properties"]
    assert proxy["RequireTLS"] is True
    secrets = resources_of(database, "AWS::SecretsManager::Secret")
    # One entry per database user (master, app), each IAM-only.
    assert (
        {ref_target(auth["SecretArn"]) for auth in proxy["Auth"]}
        == set(secrets)
        == {
            "DatabaseSecret",
            "AppUserSecret",
        }
    )
    assert {auth["IAMAuth"] for auth in proxy["Auth"]} == {"REQUIRED"}
    endpoint = _one(database, "AWS::RDS::DBProxyEndpoint")["Properties"]
    assert endpoint["TargetRole"] == "READ_ONLY"
    params = _one(database, "AWS::RDS::DBClusterParameterGroup")["Properties"]["Parameters"]
    assert params["require_secure_transport"] == "ON"


def test_database_is_reachable_only_through_the_proxy(nested: dict[str, Any]) -> None:
    groups = resources_of(nested["database"], "AWS::EC2::SecurityGroup")
    (rule,) = groups["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ref_target(rule["SourceSecurityGroupId"]) == "ProxySecurityGroup"
    (rule,) = groups["ProxySecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ref_target(rule["SourceSecurityGroupId"]) == "ClientSecurityGroupId"


def test_cache_is_replicated_with_tls_and_auth(nested: dict[str, Any]) -> None:
    cache = nested["cache"]
    props = _one(cache, "AWS::ElastiCache::ReplicationGroup")["Properties"]
    assert props["TransitEncryptionEnabled"] is True
    assert props["AtRestEncryptionEnabled"] is True
    assert props["AutomaticFailoverEnabled"] is True
    assert props["MultiAZEnabled"] is True
    assert "{{resolve:secretsmanager:" in json.dumps(props["AuthToken"])
    # Cluster mode disabled: NumCacheClusters from Nodes (2+); enabled: NumNodeGroups from Shards.
    disabled_nodes = props["NumCacheClusters"]["Fn::If"]
    assert disabled_nodes[0] == "ClusterModeEnabled"
    assert disabled_nodes[1] == {"Ref": "AWS::NoValue"}
    assert cache["Parameters"][ref_target(disabled_nodes[2])]["MinValue"] >= 2


def test_cache_offers_cluster_mode_as_a_parameter_and_the_url_follows(
    template: dict[str, Any], nested: dict[str, Any]
) -> None:
    cache = nested["cache"]
    assert cache["Parameters"]["ClusterMode"]["AllowedValues"] == ["disabled", "enabled"]
    assert cache["Parameters"]["ClusterMode"]["Default"] == "disabled"
    assert cache["Conditions"]["ClusterModeEnabled"] == {"Fn::Equals": [{"Ref": "ClusterMode"}, "enabled"]}
    props = _one(cache, "AWS::ElastiCache::ReplicationGroup")["Properties"]
    shards = props["NumNodeGroups"]["Fn::If"]
    assert shards[0] == "ClusterModeEnabled"
    assert ref_target(shards[1]) == "Shards"
    assert shards[2] == {"Ref": "AWS::NoValue"}
    replicas = props["ReplicasPerNodeGroup"]["Fn::If"]
    assert cache["Parameters"][ref_target(replicas[1])]["MinValue"] >= 1  # failover in every shard
    assert props["CacheParameterGroupName"]["Fn::If"][1] == "default.redis7.cluster.on"
    endpoint = cache["Outputs"]["PrimaryEndpoint"]["Value"]["Fn::If"]
    assert endpoint[1] == {"Fn::GetAtt": ["ReplicationGroup", "ConfigurationEndPoint.Address"]}
    assert cache["Outputs"]["UrlScheme"]["Value"]["Fn::If"][1:] == ["rediss+cluster", "rediss"]
    cache_app = resources_of(template, "AWS::Serverless::Application")["Cache"]["Properties"]["Parameters"]
    assert ref_target(cache_app["ClusterMode"]) == "CacheClusterMode"
    redis_url = template["Globals"]["Function"]["Environment"]["Variables"]["REDIS_URL"]["Fn::Sub"]
    assert redis_url[0].startswith("${Scheme}://")
    assert redis_url[1]["Scheme"] == {"Fn::GetAtt": ["Cache", "Outputs.UrlScheme"]}


def test_archive_bucket_is_private_encrypted_versioned_and_cold(nested: dict[str, Any]) -> None:
    storage = nested["storage"]
    bucket = _one(storage, "AWS::S3::Bucket")
    props = bucket["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    classes = {
        t["StorageClass"]
        for rule in props["LifecycleConfiguration"]["Rules"]
        for t in rule.get("Transitions", [])
    }
    assert "GLACIER" in classes
    assert bucket["DeletionPolicy"] == "Retain"
    (statement,) = _one(storage, "AWS::S3::BucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_token_key_rotates_and_outlives_the_stack(nested: dict[str, Any]) -> None:
    key = _one(nested["storage"], "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
    secret = _one(nested["storage"], "AWS::SecretsManager::Secret")
    assert ref_target(secret["Properties"]["KmsKeyId"]) == "TokenKey"
    assert secret["DeletionPolicy"] == "Retain"


def _policy_statements(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every IAM statement in a template (inline role policies, SAM function policies, resource
    policies), with where it was found."""
    found: list[tuple[str, dict[str, Any]]] = []
    for logical_id, resource in (doc.get("Resources") or {}).items():
        if resource.get("Type") == "AWS::KMS::Key":
            continue  # a key policy's "*" resource is the key itself; checked separately
        for node in walk(resource.get("Properties") or {}):
            if isinstance(node, dict) and "Statement" in node and isinstance(node["Statement"], list):
                found.extend((logical_id, statement) for statement in node["Statement"])
    return found


def test_no_wildcard_actions_and_no_wildcard_data_resources(all_templates: dict[str, Any]) -> None:
    checked = 0
    for path, doc in all_templates.items():
        for logical_id, statement in _policy_statements(doc):
            if statement.get("Effect") != "Allow":
                continue  # Deny-with-wildcard (TLS-only policies) narrows access
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                assert action != "*", (path, logical_id)
                assert not str(action).endswith(":*"), (path, logical_id, action)
            resources = statement.get("Resource")
            resources = resources if isinstance(resources, list) else [resources]
            if any(str(a).startswith(DATA_SERVICES) for a in actions):
                assert "*" not in resources, (path, logical_id, actions)
            checked += 1
    assert checked >= 10


def test_kms_key_policy_only_delegates_to_the_account(nested: dict[str, Any]) -> None:
    policy = _one(nested["storage"], "AWS::KMS::Key")["Properties"]["KeyPolicy"]
    for statement in policy["Statement"]:
        principal = json.dumps(statement["Principal"])
        assert ":root" in principal
        assert "${AWS::AccountId}" in principal


def test_every_template_is_lintable_yaml() -> None:
    assert sorted(p.name for p in INFRA_DIR.glob("*.yaml")) == sorted(
        f"{n}.yaml" for n in ("network", "database", "cache", "storage", "observability", "console")
    )
