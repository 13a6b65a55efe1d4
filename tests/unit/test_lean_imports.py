"""``replyflow.lean_imports``: Powertools' umbrella packages and redis-py registered without their
``__init__`` give the same objects as a plain import, run their ``__init__`` for any name they do not
map, and import what the API's cold start needs without the resolvers, event classes and Redis
clients it never uses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from replyflow.lean_imports import PACKAGES, exports

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> object:
    env = {
        "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}:{ROOT / 'functions'}:{ROOT}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_is_mapped_to_its_submodule(package: str) -> None:
    module = __import__(package, fromlist=["__all__"])
    init = Path(module.__file__ or "").read_text()
    mapped = exports(package, init)
    assert set(module.__all__) <= set(mapped)
    for name, origin in mapped.items():
        assert getattr(module, name) is getattr(__import__(origin, fromlist=[name]), name)


def test_a_mapped_name_comes_from_its_submodule_without_the_init() -> None:
    code = """
import json, sys
import api.lean_imports
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.event_handler.api_gateway import APIGatewayRestResolver as direct
assert APIGatewayRestResolver is direct and content_types.APPLICATION_JSON == "application/json"
print(json.dumps(sorted(m for m in sys.modules if m.endswith((".appsync", ".s3_event", ".kafka_event")))))
"""
    assert _run(code) == []


def test_any_other_name_runs_the_real_init() -> None:
    code = """
import json, sys
import api.lean_imports
import aws_lambda_powertools.event_handler as lean
from aws_lambda_powertools.event_handler import AppSyncResolver
from aws_lambda_powertools.event_handler.appsync import AppSyncResolver as direct
lean.__all__  # every name of the package now, as a plain import gives
import aws_lambda_powertools.utilities.data_classes as events
print(json.dumps([AppSyncResolver is direct, all(hasattr(lean, n) for n in lean.__all__),
                  "__getattr__" in vars(lean), events.S3Event.__name__]))
"""
    assert _run(code) == [True, True, False, "S3Event"]


def test_a_package_imported_before_is_left_as_it_is() -> None:
    code = """
import json, sys
import aws_lambda_powertools.event_handler as plain
import api.lean_imports
print(json.dumps([sys.modules["aws_lambda_powertools.event_handler"] is plain, "__getattr__" in vars(plain)]))
"""
    assert _run(code) == [True, False]


def test_redis_serves_its_sync_client_without_the_asyncio_cluster_and_sentinel_clients() -> None:
    code = """
import json, sys
import api.lean_imports
import redis
from redis.client import Redis
from replyflow.adapters import redis_client
client = redis.Redis.from_url("redis://127.0.0.1:1/0")
from importlib.metadata import version
print(json.dumps([redis.Redis is Redis, redis.__version__ == version("redis"),
                  redis.exceptions.ResponseError.__name__, type(client).__name__,
                  sorted(m for m in sys.modules if m in ("redis.asyncio.client", "redis.sentinel"))]))
"""
    assert _run(code) == [True, True, "ResponseError", "Redis", []]


def test_a_submodule_read_as_an_attribute_is_imported() -> None:
    code = """
import json, sys
import api.lean_imports
import redis
found = ["redis.crc" in sys.modules, redis.crc.key_slot(b"a"), redis.__version__.count(".")]
print(json.dumps([*found, "__getattr__" in vars(redis)]))  # still deferred: its __init__ never ran
"""
    assert _run(code) == [False, 15495, 2, True]
