"""Tenant ids on log lines: each record of a concurrent batch, and each API request, carries its own."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from replyflow.observability import bind_tenant, clear_tenant, logger
from replyflow.services.sqs_batch import process_batch


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(logger.registered_formatter.format(record)))


@pytest.fixture
def lines() -> Iterator[list[dict[str, object]]]:
    handler = Lines()
    logger._logger.addHandler(handler)  # the Powertools logger's stdlib logger
    try:
        yield handler.lines
    finally:
        logger._logger.removeHandler(handler)
        clear_tenant()


def test_concurrent_records_log_their_own_tenant(lines: list[dict[str, object]]) -> None:
    barrier = threading.Barrier(4)

    def handle(body: str) -> None:
        bind_tenant(body, f"acct-{body}")
        barrier.wait(5)  # every record has bound its tenant before any logs
        logger.info("record handled", extra={"expected": body})

    event = {"Records": [{"messageId": str(i), "body": f"tenant-{i}"} for i in range(4)]}
    assert process_batch(event, handle, max_workers=4) == {"batchItemFailures": []}
    assert len(lines) == 4
    assert all(line["tenant_id"] == line["expected"] for line in lines), lines


def test_a_record_does_not_inherit_the_previous_records_tenant(lines: list[dict[str, object]]) -> None:
    def bind(body: str) -> None:
        bind_tenant("tenant-a", "acct-a")

    def fail(body: str) -> None:
        raise RuntimeError("before the tenant is known")

    process_batch({"Records": [{"messageId": "1", "body": "x"}]}, bind)
    process_batch({"Records": [{"messageId": "2", "body": "x"}]}, fail)
    failed = [line for line in lines if line.get("message") == "record failed"]
    assert len(failed) == 1
    assert "tenant_id" not in failed[0]


def test_log_lines_carry_the_functions_service_and_metrics_one_dimension() -> None:
    code = "from replyflow.observability import logger, metrics; print(logger.service, metrics.service)"
    env = {**os.environ, "POWERTOOLS_SERVICE_NAME": "sender"}
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.split() == ["sender", "replyflow"]
