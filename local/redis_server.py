"""A Redis the stack's processes share when ``REDIS_URL`` is unset and the workers run in processes of
their own (an in-process fakeredis cannot be shared): ``redis-server`` on a free loopback port when it
is installed (no persistence, gone with the stack, even on ``kill -9``), else fakeredis's TCP server
in the stack's process."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

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
            self._process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # before the stack starts its threads
            )
            self.kind = "redis-server"
        self._wait_ready()

    def _start_fake(self) -> None:
        from fakeredis import TcpFakeServer

        self._fake = TcpFakeServer(("127.0.0.1", self.port), server_type="redis")
        threading.Thread(target=self._fake.serve_forever, name="fakeredis-tcp", daemon=True).start()
        self.kind = "fakeredis TCP server"

    def _wait_ready(self) -> None:
        import redis

        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        while True:
            try:
                client.ping()
                client.close()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the stack's Redis on port {self.port} did not start") from None
                time.sleep(0.05)

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
