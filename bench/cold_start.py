"""Cold start as a new instance's work: a fresh interpreter imports a handler module and serves one
sample event from ``events/`` (what every new Lambda instance pays before its first response),
against a fresh interpreter running ``import boto3`` in the same venv.

Each sample is one child process, timed by the parent from spawn to exit. The children run
interleaved (boto3, api, sender, webhook, boto3, api, ...) so load on the shared machine hits every
row alike. A row reports the median and p95 of its samples and ``ratio_p50`` / ``ratio_p95``: its
median (p95) over the boto3 baseline's median (p95) of the same run. Targets (issue 15): the API
function <= 1.5x, the sender <= 1.3x, the webhook <= 1.5x.

The children share one SQLite file with the schema (the API's list and the sender's lookup read it;
the sender's job names no stored message, so it is skipped, the way a redelivered job is) and an empty
logical database of the real Redis (no fakeredis, which a Lambda never imports). One unmeasured warm-up
child per row runs first, so the caches are warm the way they are for a new instance in production:
the webhook's account route is cached (as an account that is not ours: nothing is enqueued, so no SQS
client is built), the API's automations list is cached. Tracing is off (as outside Lambda; with
Active tracing in Lambda the X-Ray SDK and botocore are imported on top, see docs/scaling.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stats import percentile, summarize
from bench.support import empty_redis_db

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

# The context holds what Powertools reads, and nothing of the local stack's (which imports its own
# modules: they would count against the handler and not against the baseline).
SERVE = """
import json
from types import SimpleNamespace
import {module} as handler
context = SimpleNamespace(
    function_name="ColdStart", function_version="$LATEST", memory_limit_in_mb=512,
    invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:ColdStart",
    aws_request_id="cold-start", get_remaining_time_in_millis=lambda: 60000,
)
with open({event!r}) as sample:
    response = handler.lambda_handler(json.load(sample), context)
assert isinstance(response, dict) and response.get("statusCode", 200) == 200, response
"""


def _environment(database_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "POWERTOOLS_"))}
    paths = [str(ROOT / "layers" / "shared"), str(ROOT / "functions"), str(ROOT)]
    env.update(
        PYTHONPATH=os.pathsep.join(paths),
        ENVIRONMENT="test",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_METRICS_NAMESPACE="Replyflow",
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


def _time(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"cold start child failed:\n{code}\n{done.stderr[-2000:]}")
    return elapsed


def run(repeats: int = 15) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp, empty_redis_db() as redis_url:
        database_url = f"sqlite:///{tmp}/cold.db"
        env = _environment(database_url, redis_url)
        _create_schema(database_url, env)
        codes = {BASELINE: "import boto3"} | {
            name: SERVE.format(module=module, event=str(EVENTS / event))
            for name, (module, event) in HANDLERS.items()
        }
        for code in codes.values():  # warm the OS page cache and the bytecode once, unmeasured
            _time(code, env)
        samples: dict[str, list[float]] = {name: [] for name in codes}
        for _ in range(repeats):
            for name, code in codes.items():
                samples[name].append(_time(code, env))
    base_p50 = percentile(samples[BASELINE], 50)
    base_p95 = percentile(samples[BASELINE], 95)
    rows = [summarize(f"cold {BASELINE} import (baseline)", samples[BASELINE], ratio_p50=1.0, ratio_p95=1.0)]
    for name, (_module, event) in HANDLERS.items():
        ratio_p50 = percentile(samples[name], 50) / base_p50
        rows.append(
            summarize(
                f"cold {name}: import + serve {event}",
                samples[name],
                ratio_p50=round(ratio_p50, 2),
                ratio_p95=round(percentile(samples[name], 95) / base_p95, 2),
                target=TARGETS[name],
                meets_target=ratio_p50 <= TARGETS[name],
            )
        )
    return rows
