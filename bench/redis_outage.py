"""Webhook intake while Redis is down: ``webhook.handler.lambda_handler`` as in ``bench.webhook``, with
the route cache pointed at a Redis that does not work, under two Redis client policies.

Measured: the wall time of one handler call, calls back to back on one thread, one comment per call
(signed before timing). With Redis down every call misses the route cache, so it reads the route from
the database (a temp SQLite file) and then fails to cache it: two Redis calls per webhook. Outages:

- ``refused``: nothing listens on the port (a node that is gone; the kernel refuses at once);
- ``unresponsive``: a listener that accepts connections and never answers (a hung or partitioned
  node: each call waits for its timeout).

Policies: ``current`` is ``replyflow.adapters.redis_client`` (short timeouts, one retry, circuit
breaker); ``before`` is the client as it was built before that policy (2 s timeouts, no retry, no
breaker). A row with Redis up (a private redis-server) is the baseline.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.stats import summarize
from bench.support import (
    APP_SECRET,
    BENCH_CONTEXT,
    CollectingPublisher,
    comment_webhook,
    dispose_clients,
    ms_since,
    progress,
    proxy_event,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _unresponsive() -> Iterator[str]:
    """Accepts every connection and never reads or answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


@contextlib.contextmanager
def _redis_up(workdir: str) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    try:
        import redis

        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                redis.Redis(port=port, socket_connect_timeout=0.2).ping()
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(10)


def _before_policy(url: str | None) -> Any:
    import redis

    assert url is not None
    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30)


def _measure(name: str, database_url: str, redis_url: str, calls: int, policy: str) -> dict[str, Any]:
    from bench.webhook import _seed
    from replyflow.adapters import redis_client
    from replyflow.settings import Settings
    from replyflow.wiring.pipeline import build_pipeline
    from webhook.handler import make_handler

    original: Callable[[str | None], Any] = redis_client.get_redis
    redis_client.get_redis.cache_clear()
    if policy == "before":
        redis_client.get_redis = _before_policy  # type: ignore[assignment]
    collector = CollectingPublisher()
    settings = Settings(
        environment="test", database_url=database_url, redis_url=redis_url, instagram_app_secret=APP_SECRET
    )
    deps = build_pipeline(settings, publisher=collector)
    lambda_handler = make_handler(lambda: deps)
    try:
        ig_user_id = _seed(deps.clients)
        events = [proxy_event(comment_webhook(ig_user_id), APP_SECRET) for _ in range(calls + 1)]
        lambda_handler(events[0], BENCH_CONTEXT)  # warm: imports, the database connection
        samples: list[float] = []
        errors = 0
        for event in events[1:]:
            t0 = time.perf_counter()
            response = lambda_handler(event, BENCH_CONTEXT)
            samples.append(ms_since(t0))
            errors += response["statusCode"] != 200
        enqueued = len(collector.take("events-")) - 1
    finally:
        redis_client.get_redis = original  # type: ignore[assignment]
        redis_client.get_redis.cache_clear()
        dispose_clients(deps.clients)
    return summarize(name, samples, enqueued=enqueued, errors=errors, policy=policy)


def run(calls: int = 300, slow_calls: int = 20) -> list[dict[str, Any]]:
    """``slow_calls``: the calls of the ``before`` policy against an unresponsive Redis (4 s each)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="rf-bench-redis-outage-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'webhook.db'}"
        if shutil.which("redis-server"):
            with _redis_up(tmp) as up:
                progress(f"redis_outage: {calls} calls, Redis up")
                rows.append(_measure("webhook, Redis up", url, up, calls, "current"))
        refused = f"redis://127.0.0.1:{_free_port()}/0"
        for policy in ("before", "current"):
            progress(f"redis_outage: {calls} calls, Redis refused, {policy} policy")
            rows.append(_measure(f"webhook, Redis refused ({policy})", url, refused, calls, policy))
        with _unresponsive() as hung:
            for policy, n in (("before", slow_calls), ("current", calls)):
                progress(f"redis_outage: {n} calls, Redis unresponsive, {policy} policy")
                rows.append(_measure(f"webhook, Redis unresponsive ({policy})", url, hung, n, policy))
    return rows
