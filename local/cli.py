"""The ``replyflow`` command line (also ``python -m local``).

- ``run``: the local stack (:mod:`local.stack`) until Ctrl-C / SIGTERM, then a clean stop and exit 0.
- ``migrate`` / ``seed``: the database alone (``seed`` stores a placeholder demo token; ``run``
  replaces it with one the sandbox issues).
- ``simulate comment|dm|postback|quick-reply``: a webhook body shaped exactly like Instagram's,
  signed with the app secret (``X-Hub-Signature-256``), registered with the sandbox first when it
  answers, POSTed to the stack.
- ``dlq list|redrive``: the running local stack's DLQs over ``/_local``; with ``QUEUE_URLS`` set, the
  real SQS DLQs through boto3.
- ``outbox``: the emails the local stack sent (invitations, password resets), read from the outbox
  file under ``LOCAL_STATE_DIR`` (no running stack needed; ``GET /_local/outbox`` serves the same).

Other modules add subcommands with a ``register(subparsers)`` function (``local/jobs_cli.py``).
Settings come from the environment through :class:`replyflow.settings.Settings`, over the running
stack's ``.local/stack.env`` (:mod:`local.stack_env`) for every command but ``run``: the CLI in another
terminal works on the stack's database, ports and sandbox, and says so on stderr when the environment
points elsewhere. A database error ends a command with one line, not a traceback. This module prints
(it is the user interface) and never reads ``os.environ`` itself (it only quiets Powertools' EMF
output for ``run``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from replyflow.domain.webhook_bodies import (
    DEFAULT_DM_FROM_ID,
    DEFAULT_FROM_ID,
    DEFAULT_MEDIA_ID,
    DEFAULT_USERNAME,
    comment_body,
    dm_body,
    new_comment_id,
    postback_body,
    quick_reply_body,
)
from replyflow.settings import Settings

# ------------------------------------------------------------------------------------------ helpers


_cli_settings: Settings | None = None
_installed: Settings | None = None
_from_stack_env: frozenset[str] = frozenset()
_conflicts: frozenset[str] = frozenset()


def _settings() -> Settings:
    """The environment over the running stack's ``stack.env``; notes go to stderr once. Settings
    installed with ``install_settings`` (a test, an embedding process) are used as they are."""
    global _cli_settings, _from_stack_env, _conflicts
    if _installed is not None:
        return _installed
    if _cli_settings is None:
        from local.stack_env import cli_settings

        loaded = cli_settings()
        for note in loaded.notes:
            print(note, file=sys.stderr)
        _cli_settings, _from_stack_env, _conflicts = loaded.settings, loaded.from_stack_env, loaded.conflicts
    return _cli_settings


def points_elsewhere() -> bool:
    """Whether the environment chose another database, Redis, Graph host or queues than the stack's."""
    _settings()
    return bool(_conflicts)


def chosen_explicitly(name: str) -> bool:
    """Whether setting ``name`` was chosen for this command (the environment or a test), rather than
    left at its default or taken from the stack's ``stack.env``."""
    settings = _settings()
    return name in settings.model_fields_set and name not in _from_stack_env


def reset_settings() -> None:
    """Forget the loaded and installed settings (tests run several commands in one process)."""
    global _cli_settings, _from_stack_env, _conflicts, _installed
    _cli_settings, _from_stack_env, _conflicts, _installed = None, frozenset(), frozenset(), None


def install_settings(settings: Settings) -> None:
    """Run the commands on ``settings`` instead of the environment (a test, an embedding process)."""
    global _installed
    _installed = settings


def _configure_logging(settings: Settings, verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("alembic", "httpx", "httpcore", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def api_url(settings: Settings) -> str:
    from local.stack import client_host

    return f"http://{client_host(settings.replyflow_host)}:{settings.replyflow_port}"


def sandbox_url(settings: Settings) -> str:
    from local.stack import client_host

    return f"http://{client_host(settings.replyflow_host)}:{settings.replyflow_sandbox_port}"


def _try_sandbox(url: str, payload: dict[str, Any]) -> str:
    import httpx

    try:
        response = httpx.post(url, json=payload, timeout=5)
    except httpx.HTTPError:
        return "sandbox not reachable, skipped"
    return f"sandbox {response.status_code}"


def post_webhook(settings: Settings, body: dict[str, Any]) -> int:
    import httpx

    from replyflow.services.intake import sign

    raw = json.dumps(body, separators=(",", ":")).encode()
    url = f"{api_url(settings)}/webhooks/instagram"
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(raw, settings.instagram_app_secret.get_secret_value().encode()),
    }
    try:
        response = httpx.post(url, content=raw, headers=headers, timeout=30)
    except httpx.HTTPError as error:
        print(f"POST {url} failed: {error} (is `replyflow run` running?)", file=sys.stderr)
        return 1
    print(f"POST {url} -> {response.status_code} {response.text[:300]}")
    return 0 if response.is_success else 1


# ----------------------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    from local.stack import LocalStack, StackOptions

    settings = Settings()  # the stack is configured by the environment alone; it writes stack.env
    _configure_logging(settings, args.verbose)
    if not args.verbose:
        # CloudWatch EMF lines are for CloudWatch; locally the jobs' metrics show at /_local/metrics.
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    options = StackOptions(
        scheduler=not args.no_scheduler,
        sandbox=not args.no_sandbox,
        visibility_scale=args.visibility_scale,
        workers=args.workers,
        worker_processes=not args.in_process_workers,
        extra_accounts=args.extra_accounts,
        template_path=Path(args.template) if args.template else None,
        console_dir=None if args.no_console else Path(args.console),
    )
    stack = LocalStack(settings, options)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
    except Exception:
        logging.getLogger("local").exception("the local stack failed to start")
        stack.stop()
        return 1
    print(stack.banner(), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        print("Stopping the local stack...", flush=True)
        stack.stop()
    print("Stopped.", flush=True)
    return 0


def running_stack(settings: Settings) -> str | None:
    """The API URL of a local stack that answers its control routes at ``settings``' port, or None."""
    import httpx

    url = api_url(settings)
    try:
        response = httpx.get(f"{url}/_local/jobs", timeout=3)
    except httpx.HTTPError:
        return None
    return url if response.status_code == 200 else None


def cmd_migrate(args: argparse.Namespace) -> int:
    from local.stack import describe_database, migrate

    settings = _settings()
    _configure_logging(settings)
    migrate(settings)
    print(f"Migrated {describe_database(settings.database_url)}")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from local.stack import PLACEHOLDER_TOKEN, describe_database, migrate, seed

    settings = _settings()
    _configure_logging(settings)
    stack = running_stack(settings)
    if stack is not None:
        # The running stack seeded the demo tenant with a token its sandbox issued; a placeholder
        # written over it now would break every send until the stack restarts.
        print(f"The local stack at {stack} seeded the demo tenant when it started; nothing to do")
        return 0
    from replyflow.wiring.core import Clients

    migrate(settings)
    demo = seed(Clients(settings), PLACEHOLDER_TOKEN)
    print(f"Seeded plans and the demo tenant in {describe_database(settings.database_url)}")
    print(f"  login {demo.email} / {demo.password}; IG account {demo.ig_user_id}")
    print("  (the demo access token is a placeholder until `replyflow run` refreshes it)")
    return 0


def cmd_simulate_comment(args: argparse.Namespace) -> int:
    from replyflow.adapters.sandbox_comments import HttpxSandboxComments
    from replyflow.errors import SandboxUnavailableError
    from replyflow.ports import SandboxComment
    from replyflow.services.demo_seed import DEMO_IG_USER_ID

    settings = _settings()
    comment = SandboxComment(
        comment_id=args.comment_id or new_comment_id(),
        account_id=args.account or DEMO_IG_USER_ID,
        from_id=args.from_id,
        username=args.username,
        text=args.text,
        media_id=args.media,
        timestamp=time.time(),
        parent_id=args.parent,
        live=args.live,
    )
    body = comment_body(
        text=comment.text,
        account=comment.account_id,
        comment_id=comment.comment_id,
        from_id=comment.from_id,
        username=comment.username,
        media_id=comment.media_id,
        parent_id=comment.parent_id,
        live=comment.live,
        now=comment.timestamp,
    )
    try:
        HttpxSandboxComments(sandbox_url(settings)).register(comment)
        registered = "registered with the sandbox"
    except SandboxUnavailableError as error:
        registered = f"not registered: {error.message}"
    said = f"from @{args.username}: {args.text!r} ({registered})"
    print(f"comment {comment.comment_id} on media {args.media} {said}")
    if args.no_webhook:
        print("no webhook sent (a missed delivery): `replyflow jobs run reconcile-comments` catches it")
        return 0 if registered.startswith("registered") else 1
    return post_webhook(settings, body)


def cmd_simulate_dm(args: argparse.Namespace) -> int:
    from replyflow.services.demo_seed import DEMO_IG_USER_ID

    settings = _settings()
    account = args.account or DEMO_IG_USER_ID
    now = time.time()
    body = dm_body(text=args.text, account=account, from_id=args.from_id, now=now)
    registered = _try_sandbox(
        f"{sandbox_url(settings)}/_sandbox/inbound",
        {"account_id": account, "sender_id": args.from_id, "timestamp": now},
    )
    print(f"DM from {args.from_id}: {args.text!r} ({registered})")
    return post_webhook(settings, body)


def cmd_simulate_tap(args: argparse.Namespace) -> int:
    """A postback (``simulate postback``) or a quick reply (``simulate quick-reply``): the tap is the
    person's message, so the sandbox hears of it first (their window and their consent)."""
    from replyflow.services.demo_seed import DEMO_IG_USER_ID

    settings = _settings()
    account = args.account or DEMO_IG_USER_ID
    now = time.time()
    if args.kind == "postback":
        body = postback_body(
            payload=args.payload, title=args.title, account=account, from_id=args.from_id, now=now
        )
    else:
        body = quick_reply_body(
            payload=args.payload, text=args.text, account=account, from_id=args.from_id, now=now
        )
    registered = _try_sandbox(
        f"{sandbox_url(settings)}/_sandbox/inbound",
        {"account_id": account, "sender_id": args.from_id, "timestamp": now},
    )
    print(f"{args.kind} from {args.from_id}: payload {args.payload!r} ({registered})")
    return post_webhook(settings, body)


def _local_get(settings: Settings, path: str, method: str = "GET") -> Any:
    import httpx

    url = f"{api_url(settings)}{path}"
    try:
        response = httpx.request(method, url, timeout=10)
    except httpx.HTTPError as error:
        raise SystemExit(f"{url}: {error} (is `replyflow run` running? set QUEUE_URLS for AWS)") from None
    if not response.is_success:
        raise SystemExit(f"{method} {url} -> {response.status_code} {response.text}")
    return response.json()


def cmd_dlq(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.queue_urls:
        return _dlq_aws(settings, args)
    queues: dict[str, Any] = _local_get(settings, "/_local/queues")["queues"]
    dlqs = {name: stats for name, stats in queues.items() if stats.get("is_dlq")}
    if args.queue:
        wanted = queues.get(args.queue)
        if wanted is None:
            raise SystemExit(f"no queue {args.queue!r}; queues: {', '.join(sorted(queues))}")
        name = args.queue if wanted.get("is_dlq") else wanted.get("dlq_name")
        if not name:
            raise SystemExit(f"{args.queue} has no DLQ")
        dlqs = {name: queues[name]}
    if args.action == "list":
        for name, stats in sorted(dlqs.items()):
            count = stats["visible"] + stats["in_flight"] + stats["delayed"]
            source = stats["source"] or "async invocations"
            print(f"{name:24} {count:6d} message(s)  (source: {source})")
            if args.queue:
                for message in _local_get(settings, f"/_local/dlq/{name}")["messages"]:
                    receives, body = message["receiveCount"], message["body"][:200]
                    print(f"  {message['messageId']}  receives={receives}  {body}")
        return 0
    total = 0
    for name in sorted(dlqs):
        if not dlqs[name]["source"]:
            if args.queue:
                print(f"{name}: holds failed async invocations; there is no queue to redrive them to")
            continue
        moved = int(_local_get(settings, f"/_local/dlq/{name}/redrive", method="POST")["moved"])
        total += moved
        if moved or args.queue:
            print(f"{name}: {moved} message(s) moved back to {dlqs[name]['source']}")
    print(f"redrove {total} message(s)")
    return 0


def _dlq_aws(settings: Settings, args: argparse.Namespace) -> int:
    import boto3

    sqs = boto3.client("sqs", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint("sqs"))
    pairs: list[tuple[str, str, str]] = []  # (source name, dlq url, dlq arn)
    for name, url in sorted(settings.queue_urls.items()):
        if args.queue and args.queue not in {name, f"{name}-dlq"}:
            continue
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
        policy = attributes.get("RedrivePolicy")
        if not policy:
            continue
        dlq_arn = json.loads(policy)["deadLetterTargetArn"]
        dlq_url = sqs.get_queue_url(QueueName=dlq_arn.rsplit(":", 1)[1])["QueueUrl"]
        pairs.append((name, dlq_url, dlq_arn))
    if not pairs:
        raise SystemExit("no DLQs found for the configured QUEUE_URLS")
    for name, dlq_url, dlq_arn in pairs:
        if args.action == "list":
            attrs = sqs.get_queue_attributes(
                QueueUrl=dlq_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            print(f"{dlq_arn.rsplit(':', 1)[1]:32} {int(attrs['ApproximateNumberOfMessages']):6d} message(s)")
        else:
            task = sqs.start_message_move_task(SourceArn=dlq_arn)
            print(
                f"{name}: move task {task.get('TaskHandle', '?')[:40]}... started (back to the source queue)"
            )
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from replyflow.adapters.mail_outbox import OutboxMailer

    outbox = OutboxMailer.in_state_dir(_settings().local_state_dir)
    if args.clear:
        print(f"deleted {outbox.clear()} email(s) from {outbox.path}")
        return 0
    messages = outbox.messages(to=args.to, limit=args.limit)
    if args.json:
        print(json.dumps(messages, indent=2))
        return 0
    if not messages:
        print(f"no emails in {outbox.path}")
    for message in messages:
        sent = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(message["sent_at"]))
        print(f"--- #{message['id']} {sent}  {message['kind']}  to {message['to']}")
        print(f"Subject: {message['subject']}\n\n{message['text']}")
    return 0


# ------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from local import billing_cli

    parser = argparse.ArgumentParser(prog="replyflow", description="Replyflow local stack and tools")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = subparsers.add_parser("run", help="start the local stack (API, workers, sandbox, scheduler)")
    run.add_argument("--no-scheduler", action="store_true", help="do not fire the template's schedules")
    run.add_argument("--no-sandbox", action="store_true", help="do not start the Instagram sandbox")
    run.add_argument(
        "--visibility-scale",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="multiply every queue's visibility timeout (e.g. 0.01 to watch retries and DLQ moves); "
        "local only, semantics unchanged",
    )
    run.add_argument("--workers", type=int, default=4, help="max worker threads per SQS event source")
    run.add_argument(
        "--extra-accounts",
        type=int,
        default=0,
        help="seed this many Instagram accounts beyond the demo's (with the sandbox; for load tests)",
    )
    run.add_argument(
        "--in-process-workers",
        action="store_true",
        help="run the processor and sender in the stack's process (default: a process each, as Lambda)",
    )
    run.add_argument("--template", help="template.yaml to read (default: the repository's)")
    run.add_argument(
        "--console",
        default=str(Path(__file__).resolve().parents[1] / "console" / "dist"),
        metavar="DIR",
        help="the built console to serve at / (default: console/dist, when built)",
    )
    run.add_argument("--no-console", action="store_true", help="serve the API only")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    run.set_defaults(func=cmd_run)

    subparsers.add_parser("migrate", help="apply the database migrations").set_defaults(func=cmd_migrate)
    subparsers.add_parser("seed", help="migrate, then seed plans and the demo tenant").set_defaults(
        func=cmd_seed
    )

    simulate = subparsers.add_parser("simulate", help="post a signed Instagram webhook to the running stack")
    kinds = simulate.add_subparsers(dest="kind", required=True, metavar="KIND")
    comment = kinds.add_parser("comment", help="a comment on a post (or a live video with --live)")
    comment.add_argument("--text", required=True)
    comment.add_argument("--media", default=DEFAULT_MEDIA_ID, help="media id")
    comment.add_argument("--from", dest="from_id", default=DEFAULT_FROM_ID, help="commenter IGSID")
    comment.add_argument("--username", default=DEFAULT_USERNAME)
    comment.add_argument("--account", help="receiving IG account id (default: the demo account)")
    comment.add_argument("--comment-id", help="default: a fresh random id")
    comment.add_argument("--parent", help="parent comment id (a reply)")
    comment.add_argument("--live", action="store_true", help="a live_comments event")
    comment.add_argument(
        "--no-webhook",
        action="store_true",
        help="only give the comment to the sandbox, as if Meta never delivered its webhook",
    )
    comment.set_defaults(func=cmd_simulate_comment)
    dm = kinds.add_parser("dm", help="a text DM")
    dm.add_argument("--text", required=True)
    dm.add_argument("--from", dest="from_id", default=DEFAULT_DM_FROM_ID, help="sender IGSID")
    dm.add_argument("--account", help="receiving IG account id (default: the demo account)")
    dm.set_defaults(func=cmd_simulate_dm)
    billing_cli.register(kinds)
    postback = kinds.add_parser("postback", help="a button tap (a postback payload)")
    postback.add_argument("--payload", required=True)
    postback.add_argument("--title", default="Tap", help="the button's title")
    postback.add_argument("--from", dest="from_id", default=DEFAULT_FROM_ID, help="sender IGSID")
    postback.add_argument("--account", help="receiving IG account id (default: the demo account)")
    postback.set_defaults(func=cmd_simulate_tap)
    quick = kinds.add_parser("quick-reply", help="a quick reply (an email quick reply: --payload ann@x.io)")
    quick.add_argument("--payload", required=True)
    quick.add_argument("--text", help="the reply's text (default: the payload)")
    quick.add_argument("--from", dest="from_id", default=DEFAULT_FROM_ID, help="sender IGSID")
    quick.add_argument("--account", help="receiving IG account id (default: the demo account)")
    quick.set_defaults(func=cmd_simulate_tap)

    dlq = subparsers.add_parser("dlq", help="list or redrive dead-letter queues")
    dlq.add_argument("action", choices=["list", "redrive"])
    dlq.add_argument("--queue", help="a queue or DLQ name (events-high, sends-low-dlq, ...)")
    dlq.set_defaults(func=cmd_dlq)

    outbox = subparsers.add_parser("outbox", help="emails the local stack sent (invitations, resets)")
    outbox.add_argument("--to", help="only the emails to this address")
    outbox.add_argument("--limit", type=int, default=20, help="the newest N (default 20)")
    outbox.add_argument("--json", action="store_true", help="as JSON")
    outbox.add_argument("--clear", action="store_true", help="delete every email in the outbox")
    outbox.set_defaults(func=cmd_outbox)

    from local import shards_cli

    shards_cli.register(subparsers)
    try:
        extension = importlib.import_module("local.jobs_cli")
    except ModuleNotFoundError as error:
        if error.name != "local.jobs_cli":
            raise
    else:
        extension.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    raise SystemExit(run_command(args))


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command; a database that is missing or unreachable is one line on stderr."""
    from sqlalchemy.exc import SQLAlchemyError

    from local.stack import describe_database
    from local.stack_env import one_line

    try:
        code: int = args.func(args)
    except SQLAlchemyError as error:
        where = describe_database(_settings().database_url)
        print(f"replyflow: database error on {where}: {one_line(error)}", file=sys.stderr)
        return 1
    return code
