"""The CLI works locally: it reads the running stack's ``stack.env``, says so when the environment
points elsewhere, refuses a job it cannot run safely in one line, and a missing database is one line."""

from __future__ import annotations

import argparse
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from local import cli, stack_env
from local.gateway import HttpRequest, LocalGateway
from local.template import load_template
from replyflow.adapters.sqs_admin import BrokerQueueStats
from replyflow.settings import Settings
from replyflow.wiring.jobs import build_jobs
from tests.unit.test_jobs_usage_health import Inspector


@pytest.fixture(autouse=True)
def fresh_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # No local stack answers in the unit tier (no sockets): every job runs "here" or is refused.
    monkeypatch.setattr(cli, "running_stack", lambda settings: None)
    for name in ("DATABASE_URL", "GRAPH_API_BASE_URL", "QUEUE_URLS", "REDIS_URL", "LOCAL_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    cli.reset_settings()
    yield
    cli.reset_settings()


def stack_settings(tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'stack.db'}",
        "graph_api_base_url": "http://127.0.0.1:49999",
        "replyflow_port": 41234,
        "local_state_dir": str(tmp_path / ".local"),
        "instagram_app_secret": "stack-secret",
        **extra,
    }
    return Settings(**values)


def main(*argv: str) -> int:
    args = cli.build_parser().parse_args(list(argv))
    return cli.run_command(args)


def test_the_stack_env_round_trips_with_absolute_paths_and_private_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(database_url="sqlite:///.local/x.db", local_state_dir=".local", replyflow_port=41234)
    path = stack_env.write(settings, pid=123)
    assert path == (tmp_path / ".local" / "stack.env").resolve()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = stack_env.read(path)
    assert values["database_url"] == f"sqlite:///{(tmp_path / '.local' / 'x.db').resolve()}"
    assert values["replyflow_port"] == "41234"
    assert values["queue_urls"] == "{}"


def test_the_cli_reads_the_running_stacks_settings_and_the_environment_wins_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack_env.write(stack_settings(tmp_path))
    monkeypatch.setenv("LOCAL_STATE_DIR", str(tmp_path / ".local"))
    loaded = stack_env.cli_settings()
    assert loaded.settings.database_url == f"sqlite:///{tmp_path / 'stack.db'}"
    assert loaded.settings.replyflow_port == 41234
    assert loaded.settings.instagram_app_secret.get_secret_value() == "stack-secret"
    assert loaded.notes == []
    assert "database_url" in loaded.from_stack_env

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    loaded = stack_env.cli_settings()
    assert loaded.settings.database_url == f"sqlite:///{tmp_path / 'other.db'}"
    (note,) = loaded.notes
    assert "DATABASE_URL" in note
    assert "other.db" in note
    assert "stack.db" in note


def test_a_missing_or_empty_database_is_one_line(tmp_path: Path) -> None:
    missing = Settings(database_url=f"sqlite:///{tmp_path / 'nope.db'}")
    problem = stack_env.database_problem(missing)
    assert problem is not None
    assert problem.startswith("no database at SQLite")
    assert "\n" not in problem
    assert not (tmp_path / "nope.db").exists()  # looking does not create it

    sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}").connect().close()
    empty = Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    assert "has no schema yet" in (stack_env.database_problem(empty) or "")


def test_a_migrated_database_has_no_problem(sqlite_url: str) -> None:
    assert stack_env.database_problem(Settings(database_url=sqlite_url)) is None


def test_jobs_run_without_a_stack_or_database_is_one_line_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main("jobs", "run", "archive") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "no database at SQLite" in err
    assert not (tmp_path / ".local").exists()


@pytest.mark.parametrize(
    ("job", "needs"),
    [
        ("queue-metrics", "QUEUE_URLS"),
        ("reconcile-comments", "QUEUE_URLS"),
        ("webhook-subscriptions", "GRAPH_API_BASE_URL"),
        ("token-refresh", "GRAPH_API_BASE_URL"),
    ],
)
def test_jobs_that_need_the_stack_say_so_instead_of_crashing_or_calling_instagram(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sqlite_url: str,
    job: str,
    needs: str,
) -> None:
    # The stopped stack's stack.env points the Graph API at its (gone) sandbox.
    stack_env.write(stack_settings(tmp_path, database_url=sqlite_url))
    monkeypatch.setenv("LOCAL_STATE_DIR", str(tmp_path / ".local"))
    assert main("jobs", "run", job) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().count("\n") == 0
    assert needs in captured.err
    assert "replyflow run" in captured.err


def test_an_explicit_graph_host_lets_a_graph_job_run_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("GRAPH_API_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LOCAL_STATE_DIR", str(tmp_path / ".local"))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert main("jobs", "run", "token-refresh") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["job"] == "token-refresh"


def test_a_database_error_in_any_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("(1049, \"Unknown database 'rf_x'\")"))

    assert cli.run_command(argparse.Namespace(func=broken)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("replyflow: database error on ")
    assert "Unknown database 'rf_x'" in err
    assert "\n" not in err
    assert "SELECT" not in err


def test_seed_leaves_a_running_stacks_demo_token_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "running_stack", lambda settings: "http://127.0.0.1:41234")
    assert main("seed") == 0
    assert "nothing to do" in capsys.readouterr().out


def request(method: str, target: str) -> HttpRequest:
    return HttpRequest(method, target, [], b"")


def test_the_gateway_runs_a_job_inside_the_stack(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, environment="test")
    deps = build_jobs(settings, queue_stats=BrokerQueueStats(Inspector()))
    gateway = LocalGateway(load_template(), {}, jobs=deps)
    assert "reconcile-comments" in gateway.handle(request("GET", "/_local/jobs")).json()["jobs"]
    ran = gateway.handle(request("POST", "/_local/jobs/queue-metrics"))
    assert ran.status == 200
    assert ran.json()["summary"]["counts"]["queues"] == 2
    unknown = gateway.handle(request("POST", "/_local/jobs/defragment"))
    assert unknown.status == 404
    assert unknown.json()["error"]["code"] == "unknown_job"
    bad = gateway.handle(request("POST", "/_local/jobs/archive?deadline=soon"))
    assert bad.status == 400
    failed = LocalGateway(load_template(), {}, jobs=build_jobs(settings)).handle(  # no QUEUE_URLS, no broker
        request("POST", "/_local/jobs/queue-metrics")
    )
    assert failed.status == 500
    assert failed.json()["error"]["code"] == "job_failed"


def test_a_job_runs_on_the_environments_database_when_it_is_not_the_running_stacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    stack_env.write(stack_settings(tmp_path))
    monkeypatch.setenv("LOCAL_STATE_DIR", str(tmp_path / ".local"))
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")

    def no_stack_please(settings: Settings) -> str:
        raise AssertionError("the job must not go to the stack: it works on another database")

    monkeypatch.setattr(cli, "running_stack", no_stack_please)
    assert main("jobs", "run", "usage-rollover") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["job"] == "usage-rollover"
    assert "note: DATABASE_URL from the environment" in captured.err
    assert f"running usage-rollover here on SQLite {sqlite_url.removeprefix('sqlite:///')}" in captured.err


def test_an_unusable_stack_env_is_a_note_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = stack_env.write(stack_settings(tmp_path))
    path.write_text("REPLYFLOW_PORT=not-a-port\n")
    monkeypatch.setenv("LOCAL_STATE_DIR", str(tmp_path / ".local"))
    loaded = stack_env.cli_settings()
    assert loaded.stack_env is None
    assert loaded.settings.replyflow_port == 3000
    (note,) = loaded.notes
    assert "using the environment only" in note
