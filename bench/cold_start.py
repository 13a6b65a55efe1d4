"""Cold start as a new instance's work: a fresh interpreter imports a handler module and serves one
sample event from ``events/`` (what every new Lambda instance pays before its first response),
against a fresh interpreter running ``import boto3`` in the same venv.

Each sample is one child process, timed from its spawn (the parent's clock) to the moment its work is
done (the child's clock, ``time.time()`` on the same machine, printed as its last line): for a handler
the return of its first response, for the baseline the end of ``import boto3``. The interpreter's
exit after that (its final collection and module teardown: 40 ms for boto3's objects, 70-110 ms for
a handler's before ``gc_pause`` froze them) is no part of a Lambda cold start, as an instance lives on
after its first answer; it is reported beside each row (``exit_ms_p50``), not counted. The children run
interleaved (boto3, api, sender, webhook, boto3, api, ...) so load on the shared machine hits every
row alike. A row reports the median and p95 of its samples and ``ratio_p50`` / ``ratio_p95``: its
median (p95) over the boto3 baseline's median (p95) of the same run. Targets (issue 15): the API
function <= 1.5x, the sender <= 1.3x, the webhook <= 1.5x.

The children share one SQLite file with the schema (the API's list and the sender's lookup read it;
the sender's job names no stored message, so it is skipped, the way a redelivered job is) and a
redis-server of the bench's own on a free port (no fakeredis, which a Lambda never imports). An
unmeasured warm-up child of a row runs first, and again before a sample when its caches may have
expired (:data:`REWARM_SECONDS`: the webhook's negative route entry lives 30 s), so the caches are
warm the way they are for a new instance in production: the webhook's account route is cached (as an
account that is not ours: nothing is enqueued, so no SQS client is built), the API's automations list
and tenant config are cached. Tracing is off (as outside Lambda; with Active tracing in Lambda the
X-Ray SDK and botocore are imported on top, see docs/scaling.md).

Every tree runs as ``make build`` ships it: a copy of its handlers and layer without the
``__pycache__`` a test run left, compiled the way the build compiles the package
(``compileall --invalidation-mode unchecked-hash``), the children writing none
(``PYTHONDONTWRITEBYTECODE``); the installed packages keep the bytecode pip wrote, as the built layer
now holds its dependencies' (docs/deploy.md#tooling).

Reference rows, without a target: the floor of a function on SQLAlchemy (``import sqlalchemy``,
``import sqlalchemy.orm``: the sender's ledger is on the ORM, so its ratio cannot go below the second
row's), and each handler as a package built without bytecode runs (``sam build`` alone: Lambda's file
system is read-only, so every module but the runtime's standard library is compiled at every start).
Those children look for bytecode only under a ``PYTHONPYCACHEPREFIX`` that holds the standard
library's.

``COLD_START_BEFORE=<git revision>`` adds a row per handler for that revision's tree (``git archive``
into a temporary directory, run in the same venv, interleaved with the others), so before and after
come from one run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stats import percentile, summarize
from tests.private_redis import private_redis_server

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
BASELINE = "boto3"
# name -> (handler module, sample event), in the order the rows are reported.
HANDLERS = {
    "api": ("api.handler", "api_get_automations.json"),
    "sender": ("sender.handler", "sender_sqs_jobs.json"),
    "webhook": ("webhook.handler", "webhook_post_comment.json"),
}
TARGETS = {"api": 1.5, "sender": 1.3, "webhook": 1.5}
# Reference rows (no target): name -> child code, and each handler's row without bytecode.
FLOOR = {"sqlalchemy": "import sqlalchemy", "sqlalchemy.orm": "import sqlalchemy.orm"}
NO_BYTECODE_SUFFIX = " (no bytecode)"
# The standard library's parts no handler imports, left out of the no-bytecode rows' prefix.
STDLIB_UNUSED = r"[/\\](test|idlelib|tkinter|turtledemo|lib2to3|ensurepip|site-packages)[/\\]"
STATELESS = frozenset({BASELINE, *FLOOR})  # rows that read no cache: never re-warmed
# A row's caches are re-warmed (unmeasured) when its last warm-up is older than this: well under the
# shortest TTL it relies on (the webhook's negative route entry, 30 s), a sample included.
REWARM_SECONDS = 15.0
BEFORE_SUFFIX = " (before)"

# The context holds what Powertools reads, and nothing of the local stack's (which imports its own
# modules: they would count against the handler and not against the baseline).
# An API sample's caller gets the issue time the authorizer passes on for every access token
# (``issued_at_ms``): a token issued now, after the tenant's revocation ``since`` mark of the warm-up,
# so Redis vouches for it as it does for every live token (a token without it is checked in the
# database on every request, which no real caller is: docs/architecture.md#revocation-on-the-next-request).
SERVE = """
import json, time
from types import SimpleNamespace
import {module} as handler
context = SimpleNamespace(
    function_name="ColdStart", function_version="$LATEST", memory_limit_in_mb=512,
    invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:ColdStart",
    aws_request_id="cold-start", get_remaining_time_in_millis=lambda: 60000,
)
with open({event!r}) as sample:
    event = json.load(sample)
caller = (event.get("requestContext") or {{}}).get("authorizer")
if caller:
    caller["issued_at_ms"] = str(int(time.time() * 1000))
response = handler.lambda_handler(event, context)
assert isinstance(response, dict) and response.get("statusCode", 200) == 200, response
"""
# The end of a child's work: its last line, read by ``_time`` (every row's code ends with it).
DONE = "\nimport sys as _sys, time as _time\n_sys.stdout.write(f'\\n{_time.time()!r}')\n"


def _environment(database_url: str, redis_url: str, root: Path = ROOT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "POWERTOOLS_"))}
    paths = [str(root / "layers" / "shared"), str(root / "functions"), str(root)]
    env.update(
        PYTHONPATH=os.pathsep.join(paths),
        ENVIRONMENT="test",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_METRICS_NAMESPACE="Replyflow",
        PYDANTIC_DISABLE_PLUGINS="__all__",  # as template.yaml's Globals set it for every function
        PYTHONDONTWRITEBYTECODE="1",  # a Lambda package is read-only
    )
    return env


SCHEMA = """
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from replyflow.db.models import Base, Membership, Tenant, User
from replyflow.db.repositories.plans import seed_plans
engine = create_engine({url!r})
Base.metadata.create_all(engine)
with Session(engine) as session, session.begin():
    seed_plans(session)
    session.flush()
    session.add(Tenant(id={tenant!r}, name="Cold start", slug="cold-start", plan_code="pro"))
    session.add(User(id={user!r}, email="cold-start@example.com", password_hash="-"))
    session.flush()
    session.add(Membership(tenant_id={tenant!r}, user_id={user!r}, role="admin"))
"""


def _create_schema(database_url: str, env: dict[str, str]) -> None:
    """The schema, the plans and the API sample's tenant and admin (its automations list is empty)."""
    caller = json.loads((EVENTS / HANDLERS["api"][1]).read_text())["requestContext"]["authorizer"]
    code = SCHEMA.format(url=database_url, tenant=caller["tenant_id"], user=caller["principal_id"])
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)


def _time(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Milliseconds from the child's spawn to the end of its work, and from then to its exit."""
    start = time.time()
    done = subprocess.run([sys.executable, "-c", code + DONE], env=env, capture_output=True, text=True)
    exited = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"cold start child failed:\n{code}\n{done.stderr[-2000:]}")
    finished = float(done.stdout.rstrip().rsplit("\n", 1)[-1])
    return (finished - start) * 1000, (exited - finished) * 1000


def _compiled(tree: Path) -> Path:
    """``tree`` with its bytecode, compiled as ``make build`` compiles the package."""
    for part in ("layers", "functions"):
        _compile(tree / part)
    return tree


def _compile(path: Path, *, exclude: str | None = None, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    command += ["-x", exclude] if exclude else []
    subprocess.run([*command, str(path)], check=True, capture_output=True, env=env)


def _sources(into: Path) -> Path:
    """This tree's handlers and layer without any ``__pycache__`` a test run wrote beside them."""
    for part in ("layers", "functions"):
        shutil.copytree(ROOT / part, into / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return into


def _export(revision: str, into: Path) -> Path:
    """The tree of ``revision`` (``git archive``), to run the handlers as they were."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def _without_bytecode(env: dict[str, str], prefix: Path) -> dict[str, str]:
    """``env`` whose children find bytecode for the standard library only (under ``prefix``)."""
    stdlib = sysconfig.get_paths()["stdlib"]
    prefixed = {**env, "PYTHONPYCACHEPREFIX": str(prefix)}
    _compile(Path(stdlib), exclude=STDLIB_UNUSED, env={**prefixed, "PYTHONDONTWRITEBYTECODE": ""})
    return prefixed


class _Rows:
    """Each row's child code and environment, its samples, and when its caches were last warmed."""

    def __init__(self) -> None:
        self.children: dict[str, tuple[str, dict[str, str]]] = {}
        self.samples: dict[str, list[float]] = {}
        self.exits: dict[str, list[float]] = {}
        self.warmed: dict[str, float] = {}

    def add(self, name: str, code: str, env: dict[str, str]) -> None:
        self.children[name] = (code, env)
        self.samples[name] = []
        self.exits[name] = []

    def warm(self, name: str) -> None:
        _time(*self.children[name])
        self.warmed[name] = time.monotonic()

    def sample(self, name: str) -> None:
        if name not in STATELESS and time.monotonic() - self.warmed.get(name, 0.0) > REWARM_SECONDS:
            self.warm(name)
        work, exit_ms = _time(*self.children[name])
        self.samples[name].append(work)
        self.exits[name].append(exit_ms)


def _serve_codes() -> dict[str, str]:
    return {
        name: SERVE.format(module=module, event=str(EVENTS / event))
        for name, (module, event) in HANDLERS.items()
    }


def _measure(rows: _Rows, repeats: int) -> None:
    for name in rows.children:  # warm the OS page cache, the bytecode and the caches, unmeasured
        rows.warm(name)
    for _ in range(repeats):
        for name in rows.children:
            rows.sample(name)


def run(repeats: int = 15) -> list[dict[str, Any]]:
    before = os.environ.get("COLD_START_BEFORE")
    rows = _Rows()
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp, private_redis_server() as redis_url:
        database_url = f"sqlite:///{tmp}/cold.db"
        env = _environment(database_url, redis_url, _compiled(_sources(Path(tmp) / "current")))
        _create_schema(database_url, env)
        rows.add(BASELINE, "import boto3", env)
        for name, code in FLOOR.items():
            rows.add(name, code, env)
        before_env = (
            _environment(database_url, redis_url, _compiled(_export(before, Path(tmp) / "before")))
            if before
            else None
        )
        uncompiled = _without_bytecode(env, Path(tmp) / "pycache")
        for name, code in _serve_codes().items():
            if before_env is not None:
                rows.add(name + BEFORE_SUFFIX, code, before_env)
            rows.add(name, code, env)
            rows.add(name + NO_BYTECODE_SUFFIX, code, uncompiled)
        _measure(rows, repeats)
    return _report(rows.samples, before, rows.exits)


def _report(
    samples: dict[str, list[float]], before: str | None, exits: dict[str, list[float]]
) -> list[dict[str, Any]]:
    base_p50 = percentile(samples[BASELINE], 50)
    base_p95 = percentile(samples[BASELINE], 95)

    def exit_of(row: str) -> dict[str, float]:
        return {"exit_ms_p50": round(percentile(exits[row], 50), 1)} if exits[row] else {}

    out = [
        summarize(
            f"cold {BASELINE} import (baseline)",
            samples[BASELINE],
            ratio_p50=1.0,
            ratio_p95=1.0,
            **exit_of(BASELINE),
        )
    ]
    for name, (_module, event) in HANDLERS.items():
        for row, label in ((name + BEFORE_SUFFIX, f" (before: {before})"), (name, "")):
            if row not in samples:
                continue
            ratio_p50 = percentile(samples[row], 50) / base_p50
            out.append(
                summarize(
                    f"cold {name}: import + serve {event}{label}",
                    samples[row],
                    ratio_p50=round(ratio_p50, 2),
                    ratio_p95=round(percentile(samples[row], 95) / base_p95, 2),
                    target=TARGETS[name],
                    meets_target=ratio_p50 <= TARGETS[name],
                    **exit_of(row),
                )
            )
    for name, (_module, event) in HANDLERS.items():
        row = name + NO_BYTECODE_SUFFIX
        out.append(_reference(f"cold {name}: import + serve {event}, no bytecode", samples, row))
    for name, code in FLOOR.items():
        out.append(_reference(f"cold {code}", samples, name))
    return out


def _reference(label: str, samples: dict[str, list[float]], row: str) -> dict[str, Any]:
    return summarize(
        f"{label} (reference, no target)",
        samples[row],
        ratio_p50=round(percentile(samples[row], 50) / percentile(samples[BASELINE], 50), 2),
        ratio_p95=round(percentile(samples[row], 95) / percentile(samples[BASELINE], 95), 2),
    )
