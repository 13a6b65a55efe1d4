"""``replyflow jobs`` and ``replyflow archive`` (registered by ``local.cli`` when this module exists).

- ``replyflow jobs list``: the job names (the template's ScheduleV2 inputs).
- ``replyflow jobs run NAME``: run one job now in this process, with the same wiring as the Lambda
  (settings from the environment: ``DATABASE_URL``, ``ARCHIVE_BUCKET`` / ``ARCHIVE_DIR``, ...), and
  print its summary as JSON (logs and EMF metrics go to stderr). ``queue-metrics`` needs
  ``QUEUE_URLS`` here; inside the running stack the scheduler runs it against the broker. Send jobs a
  job publishes (``ledger-sweep``) go to ``QUEUE_URLS`` when set, else to the running stack's broker
  over ``POST /_local/queues/{queue}/messages``.
- ``replyflow archive restore --tenant T --from DATE --to DATE [--out FILE]``: every archived log row
  of a tenant in a date range (inclusive), as JSON lines ``{"table": ..., "row": {...}}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any, TextIO


def register(subparsers: Any) -> None:
    jobs = subparsers.add_parser("jobs", help="scheduled jobs: list, run one now")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    jobs_sub.add_parser("list", help="list the job names").set_defaults(func=_jobs_list)
    run = jobs_sub.add_parser("run", help="run one job now and print its summary")
    run.add_argument("name", help="archive, retention, token-refresh, ..., ledger-sweep (`jobs list`)")
    run.add_argument("--deadline", type=float, default=None, help="stop after this many seconds")
    run.set_defaults(func=_jobs_run)

    archive = subparsers.add_parser("archive", help="log archives")
    archive_sub = archive.add_subparsers(dest="archive_command", required=True)
    restore = archive_sub.add_parser("restore", help="read a tenant's archived logs back")
    restore.add_argument("--tenant", required=True, help="tenant id")
    restore.add_argument(
        "--from", dest="date_from", required=True, type=date.fromisoformat, help="YYYY-MM-DD"
    )
    restore.add_argument("--to", dest="date_to", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    restore.add_argument("--out", default=None, help="write JSON lines here instead of stdout")
    restore.set_defaults(func=_archive_restore)


def _jobs_list(args: argparse.Namespace) -> int:
    from replyflow.wiring.jobs import JOB_NAMES

    print("\n".join(JOB_NAMES))
    return 0


def _jobs_run(args: argparse.Namespace) -> int:
    from replyflow.observability import logger
    from replyflow.wiring import core, jobs
    from replyflow.wiring.jobs import UnknownJobError

    if not core.settings().queue_urls and core.component("queue_publisher") is None:
        core.override(queue_publisher=StackPublisher(core.settings()))
    # Log lines and EMF blobs go to stderr, so stdout carries only the summary.
    handler = logger.registered_handler
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            summary = jobs.run(args.name, deadline_seconds=args.deadline)
    except UnknownJobError as error:
        print(error.message, file=sys.stderr)
        return 2
    except RuntimeError as error:  # a missing adapter (e.g. no QUEUE_URLS outside the stack)
        print(f"job {args.name} cannot run here: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, default=str))
    return 0


class StackPublisher:
    """The queue publisher port over the running local stack's ``/_local`` control routes."""

    def __init__(self, settings: Any) -> None:
        from local.cli import api_url

        self._base = api_url(settings)

    def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None:
        import httpx

        for body in bodies:
            url = f"{self._base}/_local/queues/{queue}/messages"
            try:
                response = httpx.post(url, content=body.encode(), params={"delay": delay_seconds}, timeout=10)
            except httpx.HTTPError as error:
                raise RuntimeError(
                    f"{url}: {error} (is `replyflow run` running? set QUEUE_URLS for AWS)"
                ) from None
            response.raise_for_status()


def _archive_restore(args: argparse.Namespace) -> int:
    from replyflow.services.jobs.archive import restore
    from replyflow.wiring.jobs import archive_store

    if args.date_to < args.date_from:
        print("--to is before --from", file=sys.stderr)
        return 2
    rows = restore(archive_store(), args.tenant, args.date_from, args.date_to)
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
    parser = argparse.ArgumentParser(prog="replyflow")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
