"""Fixtures shared by the suites: a collecting queue publisher, signed webhook proxy events, SQS events
in the local broker's shape, a throwaway MariaDB database, an empty Redis database, a quiet stdout
(Powertools writes logs and EMF metrics there; the cost stays in the measurement, the text does not),
and progress lines on stderr.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local.lambda_context import LambdaContext
from tests.private_redis import private_redis_server

if TYPE_CHECKING:
    from replyflow.wiring.core import Clients


# The same defaults as the integration tier (tests/conftest.py), overridable for another machine.
MYSQL_ADMIN_URL = os.environ.get(
    "BENCH_MYSQL_URL", os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
)
APP_SECRET = "bench-app-secret"
APP_ID = "bench-app"
QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:{queue}"
# The context the Lambda runtime would pass (the handlers log it); its deadline is never reached here.
BENCH_CONTEXT = LambdaContext("BenchFunction", 512, 24 * 3600.0)


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null (the Powertools logger holds ``sys.stdout`` itself, so only
    the descriptor catches it); tables go out through :func:`report_stream`."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@dataclass
class Published:
    queue: str
    body: str
    delay_seconds: int


@dataclass
class CollectingPublisher:
    """The ``QueuePublisher`` port in memory: every body published, in order, thread-safe."""

    items: list[Published] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None:
        with self._lock:
            self.items.extend(Published(queue, body, delay_seconds) for body in bodies)

    def take(self, prefix: str) -> list[Published]:
        """Remove and return what went to queues named ``prefix*`` (``events-``, ``sends-``)."""
        with self._lock:
            taken = [item for item in self.items if item.queue.startswith(prefix)]
            self.items = [item for item in self.items if not item.queue.startswith(prefix)]
        return taken

    def clear(self) -> None:
        with self._lock:
            self.items.clear()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def new_comment_id() -> str:
    return f"179{secrets.randbelow(10**15):015d}"


def new_igsid() -> str:
    return f"7{secrets.randbelow(10**15):015d}"


def comment_webhook(account: str, *, text: str = "LINK please", comment_id: str | None = None) -> bytes:
    """One comment webhook body (``domain.webhook_bodies.comment_body``) from a commenter of its own."""
    from replyflow.domain.webhook_bodies import comment_body

    body = comment_body(
        text=text,
        account=account,
        comment_id=comment_id or new_comment_id(),
        from_id=new_igsid(),
        username=f"fan_{secrets.token_hex(3)}",
    )
    return json.dumps(body).encode()


def proxy_event(body: bytes, secret: str) -> dict[str, Any]:
    """A REST API (v1) proxy event for ``POST /webhooks/instagram``, signed like Meta signs it."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "facebookexternalua",
        "X-Hub-Signature-256": sign(secret, body),
    }
    return {
        "resource": "/webhooks/instagram",
        "path": "/webhooks/instagram",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "body": body.decode(),
        "isBase64Encoded": False,
        "requestContext": {
            "identity": {"sourceIp": "173.252.127.1"},
            "stage": "v1",
            "httpMethod": "POST",
            "path": "/webhooks/instagram",
            "requestId": str(uuid.uuid4()),
        },
    }


def sqs_event(queue: str, bodies: Sequence[str]) -> dict[str, Any]:
    """An SQS event as the local broker (and Lambda's SQS poller) delivers it."""
    now_ms = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": secrets.token_urlsafe(24),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now_ms,
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": now_ms,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN.format(queue=queue),
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


@contextlib.contextmanager
def mariadb_database(prefix: str) -> Iterator[str]:
    """A fresh, migrated database of its own on the real MariaDB; dropped on the way out, error or not."""
    import sqlalchemy as sa

    from replyflow.db.migrate import upgrade

    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(MYSQL_ADMIN_URL, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    url = MYSQL_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}?charset=utf8mb4"
    try:
        upgrade(url)
        yield url
    finally:
        _dispose_engines(url)
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


def _dispose_engines(url: str) -> None:
    """Close the pooled connections to ``url`` (the wiring's engines are cached per process), so DROP
    DATABASE waits on nothing; the next engine is built afresh."""
    from replyflow.db.engine import get_engine
    from replyflow.settings import Settings

    s = Settings()
    get_engine(url, s.database_pool_size, s.database_iam_auth).dispose()
    get_engine.cache_clear()


@contextlib.contextmanager
def bench_redis() -> Iterator[str]:
    """A redis-server of the bench's own on a free loopback port (its caches and limiter windows start
    empty, and nothing of anyone else's is touched or flushed); stopped on the way out."""
    with private_redis_server() as url:
        yield url


def dispose_clients(clients: Clients) -> None:
    """Close the pooled database connections of ``clients`` (a bench's database is dropped after)."""
    _dispose_engines(clients.settings.database_url)


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("nan")


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000
