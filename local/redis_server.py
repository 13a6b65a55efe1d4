"""A Redis the stack's processes share when ``REDIS_URL`` is unset and the workers run in processes of
their own (an in-process fakeredis cannot be shared): ``redis-server`` on a free loopback port when it
is installed (no persistence, gone with the stack, even on ``kill -9``), else fakeredis's TCP server
in the stack's process.

``free_port``, ``server_command``, ``start_server`` and ``wait_answering`` are the one way this repository
starts a ``redis-server`` of its own: the test suite's private servers and cluster nodes
(``tests/private_redis.py``) use them too.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

START_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class RedisStartError(RuntimeError):
    """A ``redis-server`` exited, or did not answer a PING in time."""


def server_command(binary: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """``redis-server`` on 127.0.0.1:``port`` with no persistence (no RDB snapshots, no AOF)."""
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra]


def start_server(
    binary: str,
    port: int,
    extra: Sequence[str] = (),
    *,
    log: IO[bytes] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
    own_group: bool = False,
) -> subprocess.Popen[bytes]:
    """Starts it (output to ``log``, else nowhere); ``die_with_parent`` kills it with this process on
    Linux, even on ``kill -9`` (set it before the caller starts threads: it runs between fork and exec);
    ``own_group`` puts it in a process group of its own, so a Ctrl-C in the terminal (SIGINT to the
    foreground group) does not stop it before its owner does."""
    return subprocess.Popen(
        server_command(binary, port, extra),
        stdout=log if log is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
        cwd=cwd,
        preexec_fn=_die_with_parent if die_with_parent else None,
        process_group=0 if own_group else None,
    )


def wait_answering(
    port: int, process: subprocess.Popen[bytes] | None = None, deadline: float | None = None
) -> None:
    """Returns once 127.0.0.1:``port`` answers a PING; ``RedisStartError`` if ``process`` exits first or
    ``deadline`` (``time.monotonic()``; default ``START_TIMEOUT_S`` from now) passes."""
    import redis

    deadline = time.monotonic() + START_TIMEOUT_S if deadline is None else deadline
    while True:
        if process is not None and process.poll() is not None:
            raise RedisStartError(f"redis-server on port {port} exited with {process.returncode}")
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2, socket_timeout=1)
        try:
            client.ping()
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise RedisStartError(f"redis-server did not answer on port {port}") from None
            time.sleep(0.05)
        finally:
            client.close()


class SharedRedis:
    """Started by :meth:`start`; ``url`` is where every process of the stack reaches it."""

    def __init__(self) -> None:
        self.port = 0
        self.kind = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._fake: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.port = free_port()
        binary = shutil.which("redis-server")
        if binary is None:
            self._start_fake()
        else:
            # Before the stack starts its threads. Its own process group: a Ctrl-C reaches the stack
            # alone, whose stop lets the in-flight batches (which call Redis) finish, then stops it.
            self._process = start_server(binary, self.port, die_with_parent=True, own_group=True)
            self.kind = "redis-server"
        self._wait_ready()

    def _start_fake(self) -> None:
        from fakeredis import TcpFakeServer

        self._fake = TcpFakeServer(("127.0.0.1", self.port), server_type="redis")
        threading.Thread(target=self._fake.serve_forever, name="fakeredis-tcp", daemon=True).start()
        self.kind = "fakeredis TCP server"

    def _wait_ready(self) -> None:
        try:
            wait_answering(self.port, self._process)
        except RedisStartError:
            self.stop()
            raise RuntimeError(f"the stack's Redis on port {self.port} did not start") from None

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            self._process = None
        if self._fake is not None:
            self._fake.shutdown()
            self._fake.server_close()
            self._fake = None
