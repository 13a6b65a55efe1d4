"""A redis-server of the test session's own: a free loopback port, no persistence, stopped at the end.

The suite never writes to the machine's Redis on 6379: that one belongs to whoever else runs on this
machine, and a ``FLUSHDB`` there (or even keys in the production ``rf:`` namespace) would touch their
data. ``redis-server`` (the binary) is all this needs; ``TEST_REDIS_URL`` points the suite at a Redis
of your choosing instead, and then the tests only write keys under their own random namespaces.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT_S = 10.0


class RedisServerUnavailableError(RuntimeError):
    """No ``redis-server`` binary, or it did not answer in time."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_redis_server() -> Iterator[str]:
    """Start ``redis-server`` on 127.0.0.1:<free port>; yields ``redis://127.0.0.1:<port>/0``."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisServerUnavailableError("redis-server is not installed (apt-get install redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="rf-test-redis-"))
    port = _free_port()
    command = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--databases",
        "16",
    ]
    log = (workdir / "redis.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RedisServerUnavailableError(
                    f"redis-server exited with {process.returncode}: "
                    f"{(workdir / 'redis.log').read_text(errors='replace')[-500:]}"
                )
            try:
                client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
                try:
                    client.ping()
                finally:
                    client.close()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RedisServerUnavailableError(f"redis-server did not answer on port {port}") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
