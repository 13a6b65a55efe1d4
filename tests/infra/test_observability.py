"""The dashboard and the alarms the issue asks for exist and watch the resources template.yaml makes."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.infra.conftest import ref_target, resources_of


def _alarms(nested: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        lid: a["Properties"]
        for lid, a in resources_of(nested["observability"], "AWS::CloudWatch::Alarm").items()
    }


def _queue_dimension(alarm: dict[str, Any]) -> str | None:
    for dimension in alarm.get("Dimensions", []):
        if dimension["Name"] == "QueueName":
            return dimension["Value"]["Fn::Sub"].removeprefix("${AppStackName}-")
    return None


def _queue_names(template: dict[str, Any]) -> dict[str, str]:
    return {
        lid: q["Properties"]["QueueName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        for lid, q in resources_of(template, "AWS::SQS::Queue").items()
    }


def _default(nested: dict[str, Any], value: Any) -> Any:
    return nested["observability"]["Parameters"][ref_target(value)]["Default"]


def test_api_p95_alarm_at_the_target(nested: dict[str, Any]) -> None:
    (alarm,) = [a for a in _alarms(nested).values() if a.get("ExtendedStatistic") == "p95"]
    assert alarm["Namespace"] == "AWS/ApiGateway"
    assert alarm["MetricName"] == "Latency"
    assert _default(nested, alarm["Threshold"]) == 200


def test_every_dead_letter_queue_alarms_on_one_message(
    template: dict[str, Any], nested: dict[str, Any]
) -> None:
    dlqs = {name for lid, name in _queue_names(template).items() if name.endswith("-dlq")}
    watched = {
        _queue_dimension(a)
        for a in _alarms(nested).values()
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    assert dlqs
    assert dlqs == watched
    for alarm in _alarms(nested).values():
        if alarm["MetricName"] == "ApproximateNumberOfMessagesVisible":
            assert alarm["Threshold"] == 0
            assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_every_work_queue_alarms_on_age(template: dict[str, Any], nested: dict[str, Any]) -> None:
    work = {name for name in _queue_names(template).values() if not name.endswith("-dlq")}
    age_alarms = [a for a in _alarms(nested).values() if a["MetricName"] == "ApproximateAgeOfOldestMessage"]
    assert {_queue_dimension(a) for a in age_alarms} == work
    assert all(_default(nested, a["Threshold"]) == 300 for a in age_alarms)


def test_5xx_rate_and_proxy_connection_alarms(nested: dict[str, Any]) -> None:
    metrics = {(a["Namespace"], a["MetricName"]) for a in _alarms(nested).values()}
    assert ("AWS/ApiGateway", "5XXError") in metrics
    assert ("AWS/RDS", "DatabaseConnections") in metrics


def test_blocked_and_misconfigured_sends_alarm_on_the_senders_metrics(nested: dict[str, Any]) -> None:
    from sender.handler import ALERT_METRIC_BY_REASON  # the names the sender emits

    metrics = {(a["Namespace"], a["MetricName"]) for a in _alarms(nested).values()}
    for name in ALERT_METRIC_BY_REASON.values():
        assert ("Replyflow", name) in metrics


def test_every_alarm_notifies(nested: dict[str, Any]) -> None:
    for lid, alarm in _alarms(nested).items():
        assert [ref_target(a) for a in alarm["AlarmActions"]] == ["AlarmTopic"], lid


def test_dashboard_shows_latency_percentiles_queues_and_sends(nested: dict[str, Any]) -> None:
    (dashboard,) = resources_of(nested["observability"], "AWS::CloudWatch::Dashboard").values()
    body = json.loads(re.sub(r"\$\{[\w:]+\}", "0", dashboard["Properties"]["DashboardBody"]["Fn::Sub"]))
    titles = " | ".join(w["properties"]["title"] for w in body["widgets"])
    for word in (
        "API latency",
        "Webhook latency",
        "Queue depth",
        "age",
        "DLQ",
        "Sends",
        "Throttles",
        "errors",
    ):
        assert word in titles, word
    latency = next(w for w in body["widgets"] if w["properties"]["title"].startswith("API latency"))
    stats = {m[-1]["stat"] for m in latency["properties"]["metrics"]}
    assert stats == {"p50", "p95", "p99"}


def test_the_redis_panel_shows_every_node_of_every_shard(nested: dict[str, Any]) -> None:
    """Node ids are <group>-NNN, or <group>-SSSS-NNN per shard in cluster mode: a fixed "-001" would
    show one node of one shard; a search on the group's id finds them all."""
    (dashboard,) = resources_of(nested["observability"], "AWS::CloudWatch::Dashboard").values()
    source = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert "${CacheReplicationGroupId}-0" not in source
    body = json.loads(re.sub(r"\$\{[\w:]+\}", "0", source.replace("${CacheReplicationGroupId}", "rg1")))
    redis = next(w for w in body["widgets"] if w["properties"]["title"].startswith("Redis"))
    expressions = [m[0]["expression"] for m in redis["properties"]["metrics"]]
    assert {re.search(r'MetricName="(\w+)"', e).group(1) for e in expressions} == {  # type: ignore[union-attr]
        "EngineCPUUtilization",
        "DatabaseMemoryUsagePercentage",
        "CurrConnections",
    }
    for expression in expressions:
        assert expression.startswith("SEARCH('{AWS/ElastiCache,CacheClusterId} "), expression
        assert "CacheClusterId=rg1'" in expression, expression


def test_observability_receives_every_function(template: dict[str, Any]) -> None:
    params = template["Resources"]["Observability"]["Properties"]["Parameters"]
    functions = resources_of(template, "AWS::Serverless::Function")
    wired = {ref_target(v) for k, v in params.items() if k.endswith("FunctionName")}
    assert wired == set(functions)
