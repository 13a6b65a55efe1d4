"""``replyflow jobs`` and ``replyflow archive`` (registered by ``local.cli`` when this module exists).

- ``replyflow jobs list``: the job names (the template's ScheduleV2 inputs).
- ``replyflow jobs run NAME``: run one job now and print its summary as JSON on stdout (everything
  else goes to stderr). With a local stack running (found through ``.local/stack.env``), the stack
  runs it (``POST /_local/jobs/NAME``): its broker, its sandbox as the Graph API, its database and
  caches, exactly as its scheduler would. Without one, the job runs in this process with the same
  wiring as the Lambda, on the settings of ``stack.env`` under the environment (also when a stack
  runs but the environment chose another database, Redis, Graph host or queues), and only where that
  is safe: a job that reads the broker (``queue-metrics``) or publishes events needs ``QUEUE_URLS``;
  a job that calls the Graph API needs ``GRAPH_API_BASE_URL`` set in the environment (never the real
  graph.instagram.com by default from a laptop). Anything missing, a missing database included, is
  one line on stderr and exit code 1.
- ``replyflow archive restore --tenant T --from DATE --to DATE [--out FILE]``: every archived log row
  of a tenant in a date range (inclusive), as JSON lines ``{"table": ..., "row": {...}}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from replyflow.settings import Settings
    from replyflow.wiring.jobs import JobsDeps

JobsBuilder = Callable[["Settings"], "JobsDeps"]


def _real_jobs(settings: Settings) -> JobsDeps:
    from replyflow.wiring.jobs import build_jobs

    return build_jobs(settings)


def register(subparsers: Any, build: JobsBuilder = _real_jobs) -> None:
    """``build`` makes the jobs' dependencies for a run in this process (a test passes its fakes)."""
    jobs = subparsers.add_parser("jobs", help="scheduled jobs: list, run one now")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    jobs_sub.add_parser("list", help="list the job names").set_defaults(func=_jobs_list)
    run = jobs_sub.add_parser("run", help="run one job now and print its summary")
    run.add_argument(
        "name", help="archive, retention, token-refresh, reconcile-comments, ledger-sweep, ... (`jobs list`)"
    )
    run.add_argument("--deadline", type=float, default=None, help="stop after this many seconds")
    run.set_defaults(func=_jobs_run, build_jobs=build)

    archive = subparsers.add_parser("archive", help="log archives")
    archive_sub = archive.add_subparsers(dest="archive_command", required=True)
    restore = archive_sub.add_parser("restore", help="read a tenant's archived logs back")
    restore.add_argument("--tenant", required=True, help="tenant id")
    restore.add_argument(
        "--from", dest="date_from", required=True, type=date.fromisoformat, help="YYYY-MM-DD"
    )
    restore.add_argument("--to", dest="date_to", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    restore.add_argument("--out", default=None, help="write JSON lines here instead of stdout")
    restore.set_defaults(func=_archive_restore, build_jobs=build)


def _jobs_list(args: argparse.Namespace) -> int:
    from replyflow.wiring.jobs import JOB_NAMES

    print("\n".join(JOB_NAMES))
    return 0


# What a job needs that only a running stack (or AWS) provides locally.
NEEDS_QUEUES = frozenset({"queue-metrics", "reconcile-comments", "ledger-sweep", "flow-timers"})
CALLS_GRAPH = frozenset({"token-refresh", "webhook-subscriptions", "reconcile-comments"})


def _jobs_run(args: argparse.Namespace) -> int:
    from local.cli import _settings, points_elsewhere, running_stack
    from replyflow.wiring.jobs import JOB_NAMES

    if args.name not in JOB_NAMES:
        print(f"unknown job {args.name!r}; known: {', '.join(JOB_NAMES)}", file=sys.stderr)
        return 2
    settings = _settings()
    # The environment chose another database (or Redis, Graph host, queues) than the running stack's:
    # the job must run on those, so not in the stack.
    stack = None if points_elsewhere() else running_stack(settings)
    if stack is not None:
        return _run_in_stack(stack, args.name, args.deadline)
    return _run_here(settings, args.name, args.deadline, args.build_jobs)


def _run_in_stack(stack: str, name: str, deadline: float | None) -> int:
    import httpx

    print(f"running {name} in the local stack at {stack}", file=sys.stderr)
    params = {"deadline": str(deadline)} if deadline is not None else None
    try:
        # A job may run for its whole Lambda timeout (900 s); connecting must not take long.
        timeout = httpx.Timeout(connect=5.0, read=None, write=30.0, pool=5.0)
        response = httpx.post(f"{stack}/_local/jobs/{name}", params=params, timeout=timeout)
    except httpx.HTTPError as error:
        print(f"job {name}: the local stack at {stack} did not answer: {error}", file=sys.stderr)
        return 1
    body = _json_or_none(response)
    if response.status_code != 200 or not isinstance(body, dict) or "summary" not in body:
        failure = body.get("error") if isinstance(body, dict) else None
        message = failure.get("message") if isinstance(failure, dict) else response.text[:300]
        print(f"job {name}: {message} (see the local stack's log)", file=sys.stderr)
        return 1
    print(json.dumps(body["summary"], indent=2, default=str))
    return 0


def _run_here(settings: Any, name: str, deadline: float | None, build: JobsBuilder) -> int:
    from local.cli import api_url, chosen_explicitly
    from local.stack import describe_database
    from local.stack_env import database_problem
    from replyflow.observability import logger
    from replyflow.wiring import jobs

    where = f"no local stack answers at {api_url(settings)}"
    if name in NEEDS_QUEUES and not settings.queue_urls:
        print(
            f"job {name} needs the queues: locally they live in a running `replyflow run` ({where}); "
            "start the stack, or set QUEUE_URLS for SQS",
            file=sys.stderr,
        )
        return 1
    # The Graph host of stack.env is the sandbox of a stack that is not running; the default is the
    # real graph.instagram.com, which a laptop must not call by accident.
    if name in CALLS_GRAPH and not chosen_explicitly("graph_api_base_url"):
        print(
            f"job {name} calls the Graph API: locally it runs against the sandbox of a running "
            f"`replyflow run` ({where}); start the stack, or set GRAPH_API_BASE_URL to the host you mean",
            file=sys.stderr,
        )
        return 1
    problem = database_problem(settings)
    if problem is not None:
        print(f"job {name}: {problem}", file=sys.stderr)
        return 1
    print(f"running {name} here on {describe_database(settings.database_url)} ({where})", file=sys.stderr)
    # Log lines and EMF blobs go to stderr, so stdout carries only the summary.
    handler = logger.registered_handler
    if isinstance(handler, logging.StreamHandler):
        handler.stream = sys.stderr  # not setStream: it flushes the old stream, which may be closed
    try:
        with contextlib.redirect_stdout(sys.stderr):
            summary = jobs.run(build(settings), name, deadline_seconds=deadline)
    except Exception as error:  # the job logged its traceback on stderr; this is the last word
        print(f"job {name} failed: {type(error).__name__}: {_first_line(error)}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _first_line(error: BaseException) -> str:
    from local.stack_env import one_line

    return one_line(error)


def _archive_restore(args: argparse.Namespace) -> int:
    from local.cli import _settings
    from replyflow.services.jobs.archive import restore

    if args.date_to < args.date_from:
        print("--to is before --from", file=sys.stderr)
        return 2
    deps: JobsDeps = args.build_jobs(_settings())
    rows = restore(deps.archive, args.tenant, args.date_from, args.date_to)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            count = _write(rows, out)
    else:
        count = _write(rows, sys.stdout)
    print(f"restored {count} rows for tenant {args.tenant}", file=sys.stderr)
    return 0


def _write(rows: Any, out: TextIO) -> int:
    count = 0
    for item in rows:
        out.write(json.dumps({"table": item.table, "row": item.row}, ensure_ascii=False) + "\n")
        count += 1
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry (``python -m local.jobs_cli jobs run archive``)."""
    from local.cli import run_command

    parser = argparse.ArgumentParser(prog="replyflow")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
