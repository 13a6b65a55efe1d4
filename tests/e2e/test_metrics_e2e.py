"""``GET /metrics`` on the running local stack: Prometheus text that moves with the traffic. API
requests (per route, with their 4xx), a comment through webhook -> processor -> sender (invocations,
per-record processing time, the bridged EMF counters), the queues and the connection pool."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(stack) -> Series:
    response = stack.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    series: Series = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            series[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return series


def total(series: Series, name: str, **match: str) -> float:
    """The sum of ``name``'s samples whose labels start with the given values."""
    return sum(
        value
        for (sample, labels), value in series.items()
        if sample == name and all(dict(labels).get(k, "").startswith(v) for k, v in match.items())
    )


def test_the_series_move_with_api_and_pipeline_traffic(local_stack) -> None:
    before = scrape(local_stack)
    for _ in range(3):
        assert local_stack.get("/health").status_code == 200
    assert local_stack.get("/v1/templates").status_code == 401
    # Under /webhooks/ (not a console page, which the gateway answers with index.html): unmatched.
    assert local_stack.get(f"/webhooks/nowhere-{id(before)}").status_code == 404
    _, response = local_stack.simulate_comment("LINK", username="e2e.metrics")
    assert response.status_code == 200
    local_stack.wait_idle()
    after = scrape(local_stack)

    def moved(name: str, **match: str) -> float:
        return total(after, name, **match) - total(before, name, **match)

    assert moved("replyflow_Latency_seconds_count", route="GET /health") == 3
    assert moved("replyflow_Latency_seconds_bucket", route="GET /health", le="+Inf") == 3
    assert moved("replyflow_4XXError_total", route="GET /v1/templates") == 1
    assert moved("replyflow_Count_total", route="GET unmatched") == 1
    assert moved("replyflow_Count_total", route="POST /webhooks/instagram") == 1
    assert moved("replyflow_Invocations_total", function="WebhookFunction") == 1
    assert moved("replyflow_Invocations_total", function="Processor") >= 1
    assert moved("replyflow_Invocations_total", function="Sender") >= 1
    assert moved("replyflow_Duration_seconds_count", function="Sender") >= 1
    # The worker's time per record (EMF RecordDuration, bridged), for the processor and the sender.
    assert moved("replyflow_RecordDuration_seconds_count", function="Processor") >= 1
    assert moved("replyflow_RecordDuration_seconds_count", function="Sender") >= 1
    assert moved("replyflow_WebhookEventsEnqueued_total", function="WebhookFunction") == 1
    assert moved("replyflow_MessagesSent_total") >= 1
    # Read at the scrape: every queue's depth and age, its DLQ's depth, the pool of the writer engine.
    assert ("replyflow_QueueVisibleMessages", (("dlq", "false"), ("queue", "events-default"))) in after
    assert ("replyflow_QueueOldestMessageAge", (("dlq", "false"), ("queue", "sends-high"))) in after
    assert ("replyflow_QueueDlqMessages", (("queue", "events-default"),)) in after
    assert ("replyflow_DatabasePoolCheckedOut", (("engine", "writer"),)) in after
    assert ("replyflow_DatabasePoolSize", (("engine", "writer"),)) in after
    assert moved("replyflow_DatabasePoolWait_seconds_count") >= 1
