"""local/prometheus.py without a stack: route labels, the EMF bridge (counts and times, labelled by
the invoking function), the invocation hook; and the Redis pieces the cluster mode relies on (key
helpers, the cache's outage-only degradation, the cluster client's breaker)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from local.prometheus import StackMetrics, current_function, route_label
from replyflow.adapters.redis_client import CrossSlotKeysError, by_slot, cluster_url, same_slot
from replyflow.observability import MetricUnit, metrics


def samples(stack: StackMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = stack.render()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_route_labels_fold_ids_and_keep_names() -> None:
    assert route_label("get", "/v1/templates/3f2a9c1e5b7d4a60") == "GET /v1/templates/{id}"
    assert route_label("POST", "/v1/automations/42/dry-run") == "POST /v1/automations/{id}/dry-run"
    assert route_label("GET", "/v1/api-keys") == "GET /v1/api-keys"
    assert route_label("GET", "/health") == "GET /health"


def test_emf_metrics_are_bridged_by_unit_and_function() -> None:
    stack = StackMetrics()
    stack.bridge_emf()
    try:
        token = current_function.set("SenderDefaultFunction")
        try:
            metrics.add_metric(name="MessagesSent", unit=MetricUnit.Count, value=3)
            metrics.add_metric(name="RecordDuration", unit=MetricUnit.Milliseconds, value=250)
        finally:
            current_function.reset(token)
        metrics.add_metric(name="CacheErrors", unit=MetricUnit.Count, value=1)
    finally:
        stack.close()
        metrics.clear_metrics()
    got = samples(stack)
    sender = (("function", "SenderDefaultFunction"),)
    assert got[("replyflow_MessagesSent_total", sender)] == 3
    assert got[("replyflow_RecordDuration_seconds_count", sender)] == 1
    assert got[("replyflow_RecordDuration_seconds_sum", sender)] == pytest.approx(0.25)
    assert got[("replyflow_CacheErrors_total", (("function", "unknown"),))] == 1
    assert "add_metric" not in metrics.__dict__  # closed: the bridge is gone


class _Fn:
    name = "ProcessorDefaultFunction"

    def invoke(self, event: Any) -> Any:
        if event == "boom":
            raise RuntimeError("boom")
        return {"batchItemFailures": [{"itemIdentifier": "m1"}], "seen": current_function.get()}


def test_invocations_durations_errors_and_batch_failures_per_function() -> None:
    stack = StackMetrics()
    fn = _Fn()
    stack.instrument_function(fn)  # type: ignore[arg-type]
    assert fn.invoke({})["seen"] == "ProcessorDefaultFunction"
    with pytest.raises(RuntimeError):
        fn.invoke("boom")
    got = samples(stack)
    labels = (("function", "ProcessorDefaultFunction"),)
    assert got[("replyflow_Invocations_total", labels)] == 2
    assert got[("replyflow_Errors_total", labels)] == 1
    assert got[("replyflow_BatchItemFailures_total", labels)] == 1
    assert got[("replyflow_Duration_seconds_count", labels)] == 2


def test_cluster_urls_and_slot_helpers() -> None:
    assert cluster_url("rediss+cluster://h:6379/0") == "rediss://h:6379/0"
    assert cluster_url("redis+cluster://127.0.0.1:7000") == "redis://127.0.0.1:7000"
    assert cluster_url("rediss://h:6379/0") is None
    same_slot(["rf:rl:api:{t:a}", "rf:rev:{t:a}:since", "rf:rev:{t:a}:user:u"])
    with pytest.raises(CrossSlotKeysError):
        same_slot(["rf:rl:api:{t:a}", "rf:rev:{t:b}:since"])
    groups = by_slot(["rf:{t:a}:config", "rf:route:ig:1", "rf:{t:a}:templates"])
    assert groups == [["rf:{t:a}:config", "rf:{t:a}:templates"], ["rf:route:ig:1"]]


def test_the_cache_degrades_on_an_outage_only() -> None:
    import fakeredis
    import redis

    from replyflow.adapters.redis_client import RedisCache

    class Failing(fakeredis.FakeRedis):
        error: Exception = redis.ConnectionError("down")

        def get(self, *args: object, **kwargs: object) -> Any:
            raise self.error

    client = Failing()
    cache = RedisCache(client)
    assert cache.get_json("k") is None
    assert cache.errors["get"] == 1
    client.error = redis.exceptions.ClusterCrossSlotError(
        "CROSSSLOT Keys in request don't hash to the same slot"
    )
    with pytest.raises(redis.exceptions.ClusterCrossSlotError):
        cache.get_json("k")
    metrics.clear_metrics()


def test_the_cluster_client_trips_the_breaker_on_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    from replyflow.adapters.redis_client import BreakerRedisCluster, CircuitBreaker, RedisUnavailableError

    clock = [100.0]
    calls: list[tuple[Any, ...]] = []
    answer: list[Exception | None] = [redis.ConnectionError("down")]

    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if answer[0] is not None:
            raise answer[0]
        return b"PONG"

    monkeypatch.setattr(redis.RedisCluster, "execute_command", execute)
    client = BreakerRedisCluster.__new__(BreakerRedisCluster)  # no nodes to discover
    client.breaker = CircuitBreaker(2.0, monotonic=lambda: clock[0])
    with pytest.raises(redis.ConnectionError):
        client.execute_command("PING")
    with pytest.raises(RedisUnavailableError):
        client.execute_command("PING")  # open: refused without a call
    assert len(calls) == 1
    clock[0] += 2.5
    answer[0] = None
    assert client.execute_command("PING") == b"PONG"  # the probe closes it
    assert not client.breaker.is_open
    answer[0] = redis.exceptions.ClusterCrossSlotError("CROSSSLOT")
    with pytest.raises(redis.exceptions.ClusterCrossSlotError):
        client.execute_command("DEL", "a", "b")
    assert not client.breaker.is_open  # a bug is not an outage
