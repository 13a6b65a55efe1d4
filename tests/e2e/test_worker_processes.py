"""The processor and sender in processes of their own (local/worker_process.py): a worker process that
dies is replaced before the next batch, and the message still goes out exactly once."""

from __future__ import annotations

import os
import re
import signal
import time

from tests.e2e.conftest import RunningStack, StartStack

PIDS = re.compile(r"Workers\s+processor pid (\d+), sender pid (\d+)")


def _worker_pids(stack: RunningStack, timeout: float = 30.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = PIDS.search(stack.output())
        if match:
            return int(match.group(1)), int(match.group(2))
        time.sleep(0.2)
    raise AssertionError("the banner names no worker processes")


def _private_replies(stack: RunningStack, comment_id: str) -> list[dict[str, object]]:
    return [
        m
        for m in stack.sandbox_messages(kind="private_reply")
        if m["recipient"].get("comment_id") == comment_id
    ]


def test_a_killed_sender_process_is_replaced_and_the_reply_goes_out_once(
    start_local_stack: StartStack,
) -> None:
    stack = start_local_stack()
    processor_pid, sender_pid = _worker_pids(stack)
    assert processor_pid != sender_pid != stack.process.pid
    os.kill(sender_pid, signal.SIGKILL)

    comment, response = stack.simulate_comment("LINK")
    assert response.status_code == 200
    comment_id = comment["entry"][0]["changes"][0]["value"]["id"]
    deadline = time.monotonic() + 60
    while not _private_replies(stack, comment_id) and time.monotonic() < deadline:
        time.sleep(0.25)
    stack.wait_idle(60)
    assert len(_private_replies(stack, comment_id)) == 1
    assert "its worker process exited" in stack.output()
