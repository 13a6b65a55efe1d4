"""``replyflow shards`` (docs/scaling.md#database-sharding), on the CLI's settings
(``DATABASE_URL`` is the directory, ``DATABASE_SHARD_URLS`` the shards):

- ``replyflow shards list``: each shard with its tenant count, and the unfinished moves, as JSON.
- ``replyflow shards move TENANT --to SHARD [--settle SECONDS]``: move a tenant's data (pause its
  writes, copy, verify counts and checksums, switch, delete the old copy). Re-run the same command
  after a crash: the move resumes at the step it reached. Errors are one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    shards = subparsers.add_parser("shards", help="tenant shards: list them, move a tenant")
    sub = shards.add_subparsers(dest="shards_command", required=True)
    sub.add_parser("list", help="the shards, their tenant counts and unfinished moves").set_defaults(
        func=_list
    )
    move = sub.add_parser("move", help="move a tenant to another shard (resumable)")
    move.add_argument("tenant", help="tenant id")
    move.add_argument("--to", dest="target", required=True, help="the target shard's name")
    move.add_argument(
        "--settle", type=float, default=5.0, help="seconds to let units of work begun before the pause end"
    )
    move.set_defaults(func=_move)


def _router() -> Any:
    from local.cli import _settings
    from replyflow.wiring.core import Clients

    router = Clients(_settings()).shard_router
    if router is None:
        print("one shard (DATABASE_SHARD_URLS is unset): nothing to list or move", file=sys.stderr)
    return router


def _list(_args: argparse.Namespace) -> int:
    from replyflow.services.shard_moves import shard_summary

    router = _router()
    if router is None:
        return 1
    print(json.dumps(shard_summary(router), indent=2, default=str))
    return 0


def _move(args: argparse.Namespace) -> int:
    from replyflow.clock import utcnow
    from replyflow.errors import ReplyflowError
    from replyflow.services.shard_moves import ShardMover

    router = _router()
    if router is None:
        return 1
    mover = ShardMover(router, now=utcnow, settle_seconds=args.settle, after_step=_progress)
    try:
        report = mover.move(args.tenant, args.target)
    except ReplyflowError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "tenant_id": report.tenant_id,
                "from": report.source,
                "to": report.target,
                "state": report.state,
                "rows": report.rows,
            },
            indent=2,
        )
    )
    return 0


def _progress(state: str) -> None:
    print(f"move: {state}", file=sys.stderr)
