"""Missed webhooks are caught, and every job runs from the CLI against the local stack (and without one)."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from replyflow.services.demo_seed import DEMO_IG_USER_ID
from replyflow.wiring.jobs import JOB_NAMES
from tests.e2e.conftest import RunningStack, StartStack


@pytest.fixture(scope="module")
def stack(start_local_stack: StartStack) -> RunningStack:
    # A stack of its own: reconciliation feeds every comment the sandbox holds, so it must not see
    # the comments other tests register.
    return start_local_stack()


def missed_comment(stack: RunningStack, text: str = "LINK please") -> str:
    """A comment the sandbox holds and Meta never delivered a webhook for."""
    comment_id = f"179{secrets.randbelow(10**14):014d}"
    response = stack.client.post(
        f"{stack.sandbox_url}/_sandbox/comments",
        json={
            "id": comment_id,
            "account_id": DEMO_IG_USER_ID,
            "media_id": "18000000000000777",
            "from_id": "7351928465012834",
            "username": "maya.creates",
            "text": text,
            "timestamp": time.time() - 120,
        },
    )
    response.raise_for_status()
    return comment_id


def run_job(stack: RunningStack, name: str) -> dict:
    result = stack.cli("jobs", "run", name)
    assert result.returncode == 0, result.stderr
    assert "in the local stack at" in result.stderr
    summary: dict = json.loads(result.stdout)
    return summary


def private_replies(stack: RunningStack, comment_id: str) -> list[dict]:
    return [
        m
        for m in stack.sandbox_messages(kind="private_reply")
        if m["recipient"] == {"comment_id": comment_id}
    ]


def test_a_missed_comment_gets_one_private_reply_through_two_runs_and_a_late_webhook(
    stack: RunningStack,
) -> None:
    comment_id = missed_comment(stack)
    first = run_job(stack, "reconcile-comments")
    assert first["counts"]["comments_fed"] == 1
    stack.wait_idle()
    assert len(private_replies(stack, comment_id)) == 1

    second = run_job(stack, "reconcile-comments")
    assert second["counts"].get("comments_fed", 0) == 0
    # Meta delivers the webhook after all, a day late in spirit: a duplicate, nothing is sent.
    from replyflow.domain.webhook_bodies import comment_body

    late = comment_body(
        text="LINK please", account=DEMO_IG_USER_ID, comment_id=comment_id, media_id="18000000000000777"
    )
    assert stack.post_webhook(late).status_code == 200
    stack.wait_idle()
    assert len(private_replies(stack, comment_id)) == 1
    rejected = stack.client.get(f"{stack.sandbox_url}/_sandbox/messages").json()["rejected"]
    assert [r for r in rejected if r["recipient"] == {"comment_id": comment_id}] == []


def test_the_simulate_command_can_leave_the_webhook_out(stack: RunningStack) -> None:
    comment_id = f"179{secrets.randbelow(10**14):014d}"
    simulated = stack.cli("simulate", "comment", "--text", "LINK", "--comment-id", comment_id, "--no-webhook")
    assert simulated.returncode == 0, simulated.stderr
    stack.wait_idle()
    assert private_replies(stack, comment_id) == []
    run_job(stack, "reconcile-comments")
    stack.wait_idle()
    assert len(private_replies(stack, comment_id)) == 1


def test_every_job_runs_from_the_cli_against_the_running_stack(stack: RunningStack) -> None:
    for name in JOB_NAMES:
        summary = run_job(stack, name)
        assert summary["job"] == name
        assert summary["ok"] is True
    metrics = run_job(stack, "queue-metrics")
    assert "events-default" in metrics["queues"]
    subscriptions = run_job(stack, "webhook-subscriptions")
    assert subscriptions["counts"]["accounts"] >= 1
    assert subscriptions["counts"].get("failed_retry_next_run", 0) == 0  # the sandbox answered


def test_without_a_stack_the_cli_says_so_in_one_line(stack: RunningStack, tmp_path: Path) -> None:
    # A directory with no stack.env and no database: nothing is created, nothing is called.
    elsewhere = {"LOCAL_STATE_DIR": str(tmp_path / ".local"), "REPLYFLOW_PORT": "9"}
    for name, expected in (
        ("archive", "no database at SQLite"),
        ("queue-metrics", "QUEUE_URLS"),
        ("webhook-subscriptions", "GRAPH_API_BASE_URL"),
    ):
        result = stack.cli("jobs", "run", name, env=elsewhere, cwd=tmp_path)
        assert result.returncode == 1, name
        assert result.stdout == "", name
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert expected in result.stderr, result.stderr
    assert not (tmp_path / ".local").exists()
