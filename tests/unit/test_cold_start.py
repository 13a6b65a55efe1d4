"""What a new instance imports before its first event (docs/scaling.md#cold-starts): outside Lambda
the tracer is off, so the X-Ray SDK (which pulls in botocore) is never imported; the sender imports
httpx only when it makes its first Graph call; no function imports pydantic-settings (the settings
read the environment themselves); the API serves a cached list to a caller Redis vouches for without
SQLAlchemy, the models or the repositories; the webhook serves a cached route and a handshake without
pydantic (its settings view and plain secret values) (docs/architecture.md#cold-starts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported(code: str, prefixes: tuple[str, ...]) -> list[str]:
    names = f"sorted(m for m in sys.modules if m.startswith({prefixes!r}))"
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps({names}))"
    env_path = f"{ROOT / 'layers' / 'shared'}:{ROOT / 'functions'}:{ROOT}"
    result = subprocess.run(
        [sys.executable, "-c", probe], env={"PYTHONPATH": env_path}, capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["webhook.handler", "sender.handler", "processor.handler", "api.handler"])
def test_no_xray_sdk_when_tracing_is_off(module: str) -> None:
    assert _imported(f"import {module}", ("aws_xray_sdk.core", "botocore.client")) == []


HANDLERS = ["webhook.handler", "sender.handler", "processor.handler", "api.handler", "authorizer.handler"]


@pytest.mark.parametrize("module", HANDLERS)
def test_no_function_imports_pydantic_settings(module: str) -> None:
    code = f"import {module}\nfrom replyflow.settings import get_settings\nget_settings()"
    assert _imported(code, ("pydantic_settings",)) == []


def test_importing_the_api_and_its_list_route_imports_no_database_code() -> None:
    code = (
        "import api.handler\nfrom api.app import new_resolver\n"
        "new_resolver(('*',), False).include_for('/v1/automations')"
    )
    assert _imported(code, ("sqlalchemy", "replyflow.db")) == []


# The sample's caller, its tenant's config and automations list cached, and the tenant's revocation
# ``since`` mark older than its token, as for every live caller of a running tenant.
SERVE_CACHED_LIST = """
import json, time
from local.lambda_context import LambdaContext
import api.handler
event = json.load(open("events/api_get_automations.json"))
caller = event["requestContext"]["authorizer"]
tenant = caller["tenant_id"]
root = api.handler._deps()
config = {"tenant_id": tenant, "status": "active", "plan_code": "pro", "api_requests_per_minute": 600}
root.cache.set_json(f"{{t:{tenant}}}:config", config, 60)
root.cache.set_json(f"{{t:{tenant}}}:automations", [], 60)
root.revoker.mark_trusted(tenant)
time.sleep(0.002)
caller["issued_at_ms"] = str(int(time.time() * 1000))
response = api.handler.lambda_handler(event, LambdaContext("ApiFunction", 512, 3))
assert response["statusCode"] == 200 and json.loads(response["body"]) == [], response
"""


def test_the_api_serves_a_cached_list_without_database_code() -> None:
    prefixes = ("sqlalchemy", "replyflow.db", "pydantic_settings", "replyflow.settings")
    assert [m for m in _imported(SERVE_CACHED_LIST, prefixes) if m != "replyflow.settings_view"] == []


# The sample's account cached (as one that is not ours: nothing is enqueued), as the bench warms it.
SERVE_WEBHOOK = """
import json
from local.lambda_context import LambdaContext
import webhook.handler
from replyflow.wiring.webhook import webhook_deps
event = json.load(open("events/webhook_post_comment.json"))
account = json.loads(event["body"])["entry"][0]["id"]
webhook_deps().cache.set_json(f"route:ig:{account}", {"unknown": True}, 60)
context = LambdaContext("WebhookFunction", 512, 3)
response = webhook.handler.lambda_handler(event, context)
assert response["statusCode"] == 200, response
hello = {"hub.mode": "subscribe", "hub.verify_token": "local-verify-token", "hub.challenge": "7"}
response = webhook.handler.lambda_handler({"httpMethod": "GET", "queryStringParameters": hello}, context)
assert response["body"] == "7", response
"""
# What the webhook's first events never import: the settings model and pydantic (its settings view
# and secret values are plain classes), the database, httpx, and boto3 (no publish, no secret ARN).
WEBHOOK_NEVER = ("pydantic", "replyflow.settings", "sqlalchemy", "replyflow.db", "httpx", "boto3")


def test_the_webhook_serves_a_cached_route_and_a_handshake_without_pydantic() -> None:
    found = _imported(SERVE_WEBHOOK, (*WEBHOOK_NEVER, "botocore.client"))
    assert [m for m in found if m != "replyflow.settings_view"] == []


@pytest.mark.parametrize("module", ["webhook.handler", "api.handler"])
def test_redis_is_imported_without_its_asyncio_and_sentinel_clients(module: str) -> None:
    # A client built, not connected (the unit tier opens no socket); the served samples use the
    # in-process Redis, whose fakeredis imports redis-py whole, as the local stack does.
    code = f"import {module}\nfrom replyflow.adapters import redis_client\nredis_client.get_redis('redis://127.0.0.1:1/0')"
    assert _imported(code, ("redis.asyncio.client", "redis.sentinel")) == []


def test_the_sender_imports_httpx_at_its_first_graph_call() -> None:
    assert _imported("import sender.handler", ("httpx",)) == []
    code = "from replyflow.adapters.graph_client import GraphClient\nGraphClient('https://graph.example')"
    assert "httpx" in _imported(code, ("httpx",))


def test_the_disabled_tracer_still_wraps_a_handler() -> None:
    from replyflow.observability import tracer

    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, int], _context: object) -> dict[str, int]:
        return {"n": event["n"] + 1}

    assert tracer.disabled
    assert handler({"n": 1}, None) == {"n": 2}


# The sample's two jobs name rows that do not exist: they end after the lease's SELECT (as a
# redelivered job does), before a slot, a decryption or a cache read.
SERVE_SENDER = """
import json, os, tempfile
os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/sender.db"
from local.lambda_context import LambdaContext
import sender.handler
from sqlalchemy import create_engine
from replyflow.db.models import Base
Base.metadata.create_all(create_engine(os.environ["DATABASE_URL"]))
event = json.load(open("events/sender_sqs_jobs.json"))
response = sender.handler.lambda_handler(event, LambdaContext("SenderFunction", 512, 3))
assert response == {"batchItemFailures": []}, response
"""
# What those jobs never import: pydantic (the settings view, plain secret values; the templates are
# the processor's), redis-py (the limiter and the cache are built at their first call), cryptography's
# AEAD (the cipher, at the first decryption), httpx (Graph) and boto3 (no publish).
SENDER_NEVER = (
    "pydantic",
    "replyflow.settings",
    "replyflow.domain.templates",
    "redis",
    "cryptography.hazmat.primitives.ciphers",
    "httpx",
    "boto3",
)


def test_the_sender_serves_jobs_that_end_before_a_slot_without_pydantic_redis_or_the_cipher() -> None:
    found = _imported(SERVE_SENDER, SENDER_NEVER)
    assert [m for m in found if m != "replyflow.settings_view"] == []
