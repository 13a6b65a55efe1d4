"""The e2e tier: the real local stack (``python -m local run``) as a subprocess, over HTTP.

Fixtures:

- ``local_stack`` (session): one stack on free ports with its own SQLite file, cwd and fakeredis,
  ``--no-scheduler`` and visibility timeouts scaled by ``E2E_VISIBILITY_SCALE`` (default 0.05: the
  template's 180 s become 9 s, so a failed record is retried within a test). Yields a
  :class:`RunningStack`.
- ``local_stack_mysql`` (session): the same on a fresh MariaDB database (``mysql_url``) and the
  session's own redis-server (``redis_server``, database 1); skipped when they are not reachable.
- ``start_local_stack``: a factory for a stack of your own with other flags or environment
  (``start_local_stack(extra_args=["--visibility-scale", "0.005"])``); stopped at session end.

On start-up failure the stack's output is in the error; on teardown the stack gets SIGINT and must
exit 0 within 30 s.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0  # two worker processes start beside the stack; the machine may be loaded
STOP_TIMEOUT = 30.0
VISIBILITY_SCALE = os.environ.get("E2E_VISIBILITY_SCALE", "0.05")
APP_SECRET = "e2e-app-secret"
VERIFY_TOKEN = "e2e-verify-token"

StartStack = Callable[..., "RunningStack"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningStack:
    """A running local stack and helpers to drive it."""

    api_url: str
    sandbox_url: str
    app_secret: str
    verify_token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    # ------------------------------------------------------------------------------- basics

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def sign(self, body: bytes) -> str:
        """The ``X-Hub-Signature-256`` value Instagram would send for ``body``."""
        return "sha256=" + hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(f"{self.api_url}{path}", **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, f"{self.api_url}{path}", **kwargs)

    # ------------------------------------------------------------------------------ webhook

    def post_webhook(
        self,
        body: dict[str, Any] | bytes,
        *,
        signature: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """POST to /webhooks/instagram, signed correctly unless ``signature`` says otherwise."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signature if signature is not None else self.sign(raw),
            **(headers or {}),
        }
        return self.client.post(f"{self.api_url}/webhooks/instagram", content=raw, headers=sent)

    def register_comment(self, body: dict[str, Any]) -> None:
        """Tell the sandbox about every comment in a webhook body (private replies need it)."""
        for entry in body.get("entry", []):
            for change in entry.get("changes", []):
                value = change.get("value", {})
                payload = {
                    "id": value["id"],
                    "account_id": entry.get("id"),
                    "from_id": value.get("from", {}).get("id"),
                    "username": value.get("from", {}).get("username"),
                    "text": value.get("text"),
                    "media_id": value.get("media", {}).get("id"),
                    "media_product_type": value.get("media", {}).get("media_product_type", "FEED"),
                    "parent_id": value.get("parent_id"),
                    "timestamp": entry.get("time"),
                }
                response = self.client.post(f"{self.sandbox_url}/_sandbox/comments", json=payload)
                response.raise_for_status()

    def simulate_comment(self, text: str, **kwargs: Any) -> tuple[dict[str, Any], httpx.Response]:
        """A fresh comment on the demo account (registered with the sandbox), delivered signed."""
        from replyflow.domain.webhook_bodies import comment_body
        from replyflow.services.demo_seed import DEMO_IG_USER_ID

        kwargs.setdefault("account", DEMO_IG_USER_ID)
        kwargs.setdefault("comment_id", f"179{secrets.randbelow(10**14):014d}")
        body = comment_body(text=text, **kwargs)
        self.register_comment(body)
        return body, self.post_webhook(body)

    # ------------------------------------------------------------------------------- queues

    def queues(self) -> dict[str, dict[str, Any]]:
        response = self.get("/_local/queues")
        response.raise_for_status()
        return dict(response.json()["queues"])

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until every consumed queue has nothing visible, in flight or delayed (AssertionError)."""
        deadline = time.monotonic() + timeout
        queues: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            queues = self.queues()
            busy = {
                name: stats
                for name, stats in queues.items()
                if stats["consumers"] and (stats["visible"] or stats["in_flight"] or stats["delayed"])
            }
            if not busy:
                return
            time.sleep(0.05)
        raise AssertionError(f"queues still busy after {timeout} s: {json.dumps(queues, indent=1)}")

    def send_to_queue(self, queue: str, body: str, *, delay_seconds: int | None = None) -> str:
        """Put a raw message on a broker queue (bypassing the webhook); returns its message id."""
        params = {"delay": str(delay_seconds)} if delay_seconds is not None else None
        response = self.client.post(
            f"{self.api_url}/_local/queues/{queue}/messages", content=body, params=params
        )
        response.raise_for_status()
        return str(response.json()["messageId"])

    def redrive(self, queue: str) -> int:
        response = self.client.post(f"{self.api_url}/_local/dlq/{queue}/redrive")
        response.raise_for_status()
        return int(response.json()["moved"])

    def dlq_messages(self, queue: str) -> list[dict[str, Any]]:
        response = self.get(f"/_local/dlq/{queue}")
        response.raise_for_status()
        return list(response.json()["messages"])

    # ---------------------------------------------------------------------------------- CLI

    def cli(self, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Any:
        """``python -m local ARGS`` as a user in another terminal: in the stack's directory, with only
        ``LOCAL_STATE_DIR`` pointing at it (ports and database come from its ``stack.env``)."""
        from replyflow.settings import Settings

        base = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
        child_env = {**base, "LOCAL_STATE_DIR": str(self.workdir / ".local"), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "local", *args],
            cwd=cwd or self.workdir,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # ------------------------------------------------------------------------------ sandbox

    def sandbox_messages(self, **filters: str) -> list[dict[str, Any]]:
        response = self.client.get(f"{self.sandbox_url}/_sandbox/messages", params=filters)
        response.raise_for_status()
        return list(response.json()["messages"])

    def clear_sandbox_messages(self) -> None:
        self.client.delete(f"{self.sandbox_url}/_sandbox/messages").raise_for_status()

    # ---------------------------------------------------------------------------- lifecycle

    def stop(self, *, group: bool = False) -> int:
        """SIGINT, as a ``kill -INT`` of its pid; with ``group`` (a stack launched with
        ``own_group``), to its whole process group, as Ctrl-C in a terminal sends it: the worker
        processes and the Redis the stack started get it too."""
        if self.process.poll() is None:
            if group:
                os.killpg(self.process.pid, signal.SIGINT)
            else:
                self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                raise AssertionError(
                    f"the local stack did not stop within {STOP_TIMEOUT} s\n{self.output()[-5000:]}"
                ) from None
        self.client.close()
        return int(self.process.returncode)


def launch(
    workdir: Path,
    *,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    database_url: str | None = None,
    module: str = "local",
    own_group: bool = False,
) -> RunningStack:
    """Start ``python -m local run --no-scheduler`` in ``workdir`` and wait until it serves (``module``:
    another entry point with the same arguments, e.g. the load test's timed stack; ``own_group``: in a
    process group of its own, which ``stop(group=True)`` interrupts as a terminal's Ctrl-C would)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, sandbox_port = free_port(), free_port()
    inherited = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_READER_URL"}}
    child_env = {
        **inherited,
        "PYTHONUNBUFFERED": "1",
        "REPLYFLOW_HOST": "127.0.0.1",
        "REPLYFLOW_PORT": str(port),
        "REPLYFLOW_SANDBOX_PORT": str(sandbox_port),
        "REPLYFLOW_STRIPE_PORT": str(free_port()),
        "INSTAGRAM_APP_SECRET": APP_SECRET,
        "INSTAGRAM_VERIFY_TOKEN": VERIFY_TOKEN,
        "DATABASE_URL": database_url or f"sqlite:///{workdir / 'e2e.db'}",
        "ARCHIVE_DIR": str(workdir / ".local" / "archive"),
        "ENVIRONMENT": "test",
        "QUEUE_URLS": "",
        **(env or {}),
    }
    log_path = workdir / "stack.log"
    command = [
        sys.executable,
        "-m",
        module,
        "run",
        "--no-scheduler",
        "--visibility-scale",
        VISIBILITY_SCALE,
        *extra_args,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0 if own_group else None,
        )
    stack = RunningStack(
        api_url=f"http://127.0.0.1:{port}",
        sandbox_url=f"http://127.0.0.1:{sandbox_port}",
        app_secret=APP_SECRET,
        verify_token=VERIFY_TOKEN,
        process=process,
        log_path=log_path,
        workdir=workdir,
    )
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the local stack exited with {process.returncode}:\n{stack.output()[-8000:]}")
        try:
            # The gateway starts last; /health then proves the API function imports and answers.
            if stack.get("/_local/queues", timeout=2).status_code == 200:
                health = stack.get("/health", timeout=10)
                if health.status_code == 200:
                    return stack
                last = f"/health -> {health.status_code} {health.text[:300]}"
        except httpx.HTTPError as error:
            last = repr(error)
        if time.monotonic() > deadline:
            stack.process.kill()
            raise RuntimeError(
                f"the local stack was not healthy in {START_TIMEOUT} s ({last}):\n{stack.output()[-8000:]}"
            )
        time.sleep(0.2)


@pytest.fixture(scope="session")
def start_local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartStack]:
    started: list[RunningStack] = []

    def start(
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        database_url: str | None = None,
    ) -> RunningStack:
        stack = launch(
            tmp_path_factory.mktemp("stack"), extra_args=extra_args, env=env, database_url=database_url
        )
        started.append(stack)
        return stack

    yield start
    failures = []
    for stack in started:
        code = stack.stop()
        if code != 0:
            failures.append(f"exit code {code}\n{stack.output()[-5000:]}")
    assert not failures, "the local stack did not exit cleanly on SIGINT:\n" + "\n".join(failures)


@pytest.fixture(scope="session")
def local_stack(start_local_stack: StartStack) -> RunningStack:
    return start_local_stack()


@pytest.fixture(scope="session")
def local_stack_mysql(
    tmp_path_factory: pytest.TempPathFactory, mysql_url: str, redis_server: str
) -> Iterator[RunningStack]:
    """Stopped here rather than by the factory: before ``mysql_url`` drops its database. Redis is the
    session's own server (logical database 1, which no other fixture uses), so nothing is flushed."""
    stack_redis = f"{redis_server.rsplit('/', 1)[0]}/1"
    stack = launch(
        tmp_path_factory.mktemp("stack-mysql"), database_url=mysql_url, env={"REDIS_URL": stack_redis}
    )
    try:
        yield stack
    finally:
        code = stack.stop()
    assert code == 0, f"the local stack did not exit cleanly on SIGINT:\n{stack.output()[-5000:]}"
