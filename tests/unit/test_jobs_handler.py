"""The jobs Lambda handler and the ``replyflow jobs`` / ``replyflow archive`` commands, wired with fakes."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobs.handler import make_handler
from local import cli, jobs_cli
from replyflow.adapters.sqs_admin import BrokerQueueStats
from replyflow.db.engine import session_factory
from replyflow.errors import ValidationError
from replyflow.settings import Settings
from replyflow.wiring.jobs import JOB_NAMES, JobsDeps, UnknownJobError, build_jobs
from tests.conftest import load_event
from tests.support_pipeline import MemoryQueues
from tests.unit.test_jobs_fakes import KEY, FakeGraph, MemoryStore, RecordingSink, add_logs, add_tenant
from tests.unit.test_jobs_usage_health import Inspector

NOW = datetime(2026, 4, 1, 2, 0)


@dataclass
class Context:
    function_name: str = "JobsFunction"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:jobs"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


class Clock:
    def now(self) -> datetime:
        return NOW


@dataclass(frozen=True)
class Wired:
    store: MemoryStore
    sink: RecordingSink
    settings: Settings

    def deps(self, settings: Settings | None = None) -> JobsDeps:
        return build_jobs(
            settings or self.settings,
            archive=self.store,
            metrics=self.sink,
            queue_stats=BrokerQueueStats(Inspector()),
            graph=FakeGraph(),
            publisher=MemoryQueues(),
            clock=Clock(),
        )

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        deps = self.deps()
        return make_handler(lambda: deps)(event, Context())


@pytest.fixture
def wired(sqlite_url: str) -> Iterator[Wired]:
    with session_factory(sqlite_url)() as session:
        add_tenant(session, "t1", "free")
        add_logs(session, "t1", NOW - timedelta(days=20), 40, timedelta(hours=12))
        session.commit()
    settings = Settings(database_url=sqlite_url, token_encryption_key=KEY, environment="test")
    cli.install_settings(settings)  # the CLI reads the settings installed by an embedding process
    yield Wired(MemoryStore(), RecordingSink(), settings)
    cli.reset_settings()


def test_every_scheduled_job_runs_from_its_event(wired: Wired) -> None:
    store, sink = wired.store, wired.sink
    for name in JOB_NAMES:
        event = load_event(f"jobs_{name.replace('-', '_')}.json")
        summary = wired.invoke(event)
        assert summary["job"] == name
        assert summary["ok"] is True
        assert sink.value("JobDuration", job=name) is not None
    # The archive ran before retention, so retention could delete what it archived.
    assert sink.value("RowsArchived", job="archive") == 2 * 26
    assert sink.value("RowsDeleted", job="retention") == 2 * 26
    assert sink.value("QueueVisibleMessages", queue="events-high") == 3
    assert any(k.endswith("manifest.json") for k in store.objects)


def test_unknown_or_missing_job_is_an_error(wired: Wired) -> None:
    with pytest.raises(UnknownJobError):
        wired.invoke({"job": "defragment"})
    with pytest.raises(ValidationError):
        wired.invoke({"detail": {}})


def _cli(wired: Wired, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="replyflow")
    jobs_cli.register(parser.add_subparsers(dest="command", required=True), wired.deps)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_cli_runs_a_job_and_restores_an_archive(
    wired: Wired,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli, "running_stack", lambda settings: None)  # no stack: run in this process
    assert _cli(wired, "jobs", "run", "archive") == 0
    assert json.loads(capsys.readouterr().out)["counts"]["rows_archived"] == 52
    assert _cli(wired, "jobs", "run", "nope") == 2
    out = tmp_path / "restored.jsonl"
    assert (
        _cli(
            wired,
            "archive",
            "restore",
            "--tenant",
            "t1",
            "--from",
            "2026-03-12",
            "--to",
            "2026-03-14",
            "--out",
            str(out),
        )
        == 0
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 2 * 2 * 3  # two rows a day, both tables, three days
    assert {line["table"] for line in lines} == {"reply_logs", "automation_logs"}
    assert all(line["row"]["tenant_id"] == "t1" for line in lines)
    assert "restored 12 rows" in capsys.readouterr().err
