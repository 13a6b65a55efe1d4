"""A redis-server of the test session's own: a free loopback port, no persistence, stopped at the end.

The suite never writes to the machine's Redis on 6379: that one belongs to whoever else runs on this
machine, and a ``FLUSHDB`` there (or even keys in the production ``rf:`` namespace) would touch their
data. ``redis-server`` (the binary) is all this needs; ``TEST_REDIS_URL`` points the suite at a Redis
of your choosing instead, and then the tests only write keys under their own random namespaces.
The servers are started by ``local.redis_server`` (the local stack's own Redis): one command line, one
free-port probe and one readiness wait for both.
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
from typing import TYPE_CHECKING

from local.redis_server import START_TIMEOUT_S, RedisStartError, free_port, start_server, wait_answering

if TYPE_CHECKING:
    import redis as redis_types


class RedisServerUnavailableError(RuntimeError):
    """No ``redis-server`` binary, or it did not answer in time."""


@contextmanager
def private_redis_server() -> Iterator[str]:
    """Start ``redis-server`` on 127.0.0.1:<free port>; yields ``redis://127.0.0.1:<port>/0``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisServerUnavailableError("redis-server is not installed (apt-get install redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="rf-test-redis-"))
    port = free_port()
    log = (workdir / "redis.log").open("wb")
    extra = ("--dir", str(workdir), "--databases", "16")
    process = start_server(binary, port, extra, log=log, cwd=workdir)
    try:
        try:
            wait_answering(port, process)
        except RedisStartError as error:
            tail = (workdir / "redis.log").read_text(errors="replace")[-500:]
            raise RedisServerUnavailableError(f"{error}: {tail}") from None
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


CLUSTER_MASTERS = 3
CREATE_FLAGS = ("--cluster-replicas", "0", "--cluster-yes")
CLUSTER_BUS_OFFSET = 10000  # a cluster node also listens on its port + 10000 (the cluster bus)


def _free_cluster_port() -> int:
    """A free port whose cluster-bus port (+10000) is a valid port and free too."""
    for _ in range(200):
        port = free_port()
        if port + CLUSTER_BUS_OFFSET > 65535:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", port + CLUSTER_BUS_OFFSET))
        except OSError:
            continue
        return port
    raise RedisServerUnavailableError("no free port pair for a cluster node")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _wait_cluster_ok(ports: list[int]) -> None:
    import redis

    deadline = time.monotonic() + START_TIMEOUT_S * 2
    while True:
        states = []
        for port in ports:
            client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2)
            try:
                info = client.cluster("INFO")  # parsed into a dict by redis-py
                state = info.get("cluster_state") if isinstance(info, dict) else None
                states.append(state in ("ok", b"ok"))
            except redis.RedisError:
                states.append(False)
            finally:
                client.close()
        if all(states):
            return
        if time.monotonic() > deadline:
            raise RedisServerUnavailableError(f"the test cluster on {ports} never reached cluster_state:ok")
        time.sleep(0.1)


@contextmanager
def private_redis_cluster() -> Iterator[str]:
    """A Redis Cluster of three masters (no replicas) on free loopback ports, no persistence, stopped
    at the end; yields ``redis+cluster://127.0.0.1:<first port>`` (the client discovers the others)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        raise RedisServerUnavailableError("redis-server and redis-cli are needed for the test cluster")
    workdir = Path(tempfile.mkdtemp(prefix="rf-test-cluster-"))
    ports = [_free_cluster_port() for _ in range(CLUSTER_MASTERS)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            node_dir = workdir / str(port)
            node_dir.mkdir()
            extra = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node_dir / "nodes.conf"),
                "--dir",
                str(node_dir),
            )
            log = (node_dir / "redis.log").open("wb")
            processes.append(start_server(server, port, extra, log=log, cwd=node_dir))
        _wait_answering(ports, processes, workdir)
        create = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), *CREATE_FLAGS],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if create.returncode != 0:
            raise RedisServerUnavailableError(f"redis-cli --cluster create failed: {create.stdout[-500:]!r}")
        _wait_cluster_ok(ports)
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        _stop(processes)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_answering(ports: list[int], processes: list[subprocess.Popen[bytes]], workdir: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    for port, process in zip(ports, processes, strict=True):
        try:
            wait_answering(port, process, deadline)
        except RedisStartError as error:
            tail = (workdir / str(port) / "redis.log").read_text(errors="replace")[-300:]
            raise RedisServerUnavailableError(f"a cluster node: {error}: {tail}") from None


def client_for(url: str) -> redis_types.Redis:
    """A plain client of a test URL, standalone or ``redis+cluster://`` (test-side reads and cleanup)."""
    import redis

    from replyflow.adapters.redis_client import cluster_url

    plain = cluster_url(url)
    if plain is not None:
        return redis.RedisCluster.from_url(plain)  # type: ignore[return-value]
    return redis.Redis.from_url(url)
