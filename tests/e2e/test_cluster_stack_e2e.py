"""The local stack with ``REDIS_URL=redis+cluster://...``: the session's three-master Redis Cluster
holds the webhook's routing cache, the processor's cooldowns and the sender's limiter, and comments
still become exactly one DM each, with no swallowed cache error."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_metrics_e2e import scrape, total

pytestmark = pytest.mark.e2e


def test_the_pipeline_runs_on_a_redis_cluster(start_local_stack, redis_cluster: str) -> None:
    stack = start_local_stack(env={"REDIS_URL": redis_cluster})
    comment_ids = []
    for i in range(5):
        body, response = stack.simulate_comment("LINK", username=f"e2e.cluster{i}")
        assert response.status_code == 200
        comment_ids.append(body["entry"][0]["changes"][0]["value"]["id"])
    stack.post_webhook(body)  # a duplicate delivery: the ledger absorbs it
    stack.wait_idle()
    messages = json.dumps(stack.sandbox_messages())
    assert all(messages.count(comment_id) == 1 for comment_id in comment_ids)
    series = scrape(stack)
    assert total(series, "replyflow_MessagesSent_total") == 5
    assert total(series, "replyflow_CacheErrors_total") == 0
    assert total(series, "replyflow_ProcessorRedisFallbacks_total") == 0
