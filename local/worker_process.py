"""The queue-fed functions (processor, sender) in processes of their own, as Lambda runs them: one
process per function, so the webhook, the processor and the sender use both cores instead of sharing
one interpreter's lock (docs/scaling.md#the-local-stack-on-two-cores).

The broker stays in the stack's process and keeps every guarantee of its durable queues: its worker
threads gather batches, then call :meth:`FunctionProcess.invoke`, which hands the SQS event to the
function's process over a Unix socket (one connection per broker thread) and waits for the answer. A
function process that dies mid-batch closes the socket: the invocation raises, the broker fails the
whole batch, and its records come back after their visibility timeout (a crashed Lambda instance).

What the function publishes (send jobs, deferrals) and its ChangeMessageVisibility calls come back to
the broker over a second socket (:class:`BrokerProxy`), synchronously: a publish returns only once
the broker wrote the message to its journal, exactly as in-process. The EMF metrics the handler adds
travel back with the answer, so ``/metrics`` still counts them under the function's name.

A function process exits when the stack's process does, even on ``kill -9`` (``PR_SET_PDEATHSIG``
on Linux, and a thread that watches the parent's sentinel everywhere else), and only then or when
the stack stops it: it ignores SIGINT. A Ctrl-C in the terminal goes to the whole foreground process
group; a worker that took it would die mid-batch (a sender between owning its row and calling Graph
leaves the row ``sending`` until its lease ends, a processor between its commit and its publish leaves
rows ``queued``), where the stack's stop lets the in-flight batches finish first
(:meth:`local.stack.LocalStack.stop`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import multiprocessing
import os
import queue
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.lambda_context import LambdaFunction
from local.prometheus import POOL_WAIT, time_pool_checkouts

if TYPE_CHECKING:
    from local.broker import Broker
    from local.template import FunctionSpec
    from replyflow.settings import Settings

log = logging.getLogger("local.worker_process")

START_TIMEOUT_S = 60.0
PR_SET_PDEATHSIG = 1
# An error the broker raises that the function's adapters handle (BrokerVisibility logs them).
KNOWN_ERRORS: dict[str, type[Exception]] = {"KeyError": KeyError, "ValueError": ValueError}

EmfSink = Callable[[str, str, float], None]
_pool_waits: queue.SimpleQueue[float] = queue.SimpleQueue()
_captured: contextvars.ContextVar[list[tuple[str, str, float]] | None] = contextvars.ContextVar(
    "captured_emf", default=None
)


class RemoteInvocationError(RuntimeError):
    """The function's process raised, or died during the invocation."""


# ------------------------------------------------------------------------------------ the stack side


class BrokerServer:
    """The broker's calls from the function processes: ``send`` and ``change_message_visibility``."""

    def __init__(self, broker: Broker, address: str, authkey: bytes) -> None:
        self._broker = broker
        self._listener = Listener(address, family="AF_UNIX", authkey=authkey)
        self._thread = threading.Thread(target=self._accept, name="broker-rpc", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(conn,), name="broker-rpc-conn", daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    op, args = conn.recv()
                except (EOFError, OSError):
                    return
                conn.send(self._call(op, args))

    def _call(self, op: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        try:
            if op == "send":
                queue_name, bodies, delay = args
                for body in bodies:
                    self._broker.send(queue_name, body, delay_seconds=delay)
            elif op == "visibility":
                self._broker.change_message_visibility(*args)
            else:
                raise ValueError(f"unknown broker call {op!r}")
        except Exception as error:
            kind = next((name for name, cls in KNOWN_ERRORS.items() if isinstance(error, cls)), "")
            return ("error", (kind, str(error)))
        return ("ok", None)

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):  # the socket file is already gone
            self._listener.close()


class FunctionProcess(LambdaFunction):
    """A template function whose invocations run in its handler's worker process (:class:`WorkerHost`)."""

    def __init__(self, spec: FunctionSpec, *, emf_sink: EmfSink | None = None) -> None:
        super().__init__(spec)
        self.emf_sink = emf_sink
        self.host: WorkerHost | None = None

    def invoke(self, event: Any) -> Any:
        assert self.host is not None, "the worker processes are not started"
        status, value, emf = self.host.call(self.name, event)
        if self.emf_sink is not None:
            for name, unit, amount in emf:
                self.emf_sink(name, unit, amount)
        if status != "ok":
            raise RemoteInvocationError(f"{self.name}: {value}")
        return value


class WorkerHost:
    """One child process running every function of one handler (the three processor functions, one
    per priority, share a process, as do the three senders)."""

    def __init__(self, handler: str, functions: list[FunctionProcess]) -> None:
        self.handler = handler
        self.functions = functions
        self._process: multiprocessing.process.BaseProcess | None = None
        self._ready: Any = None
        self._address = ""
        self._authkey = b""
        self._idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        self._spawn_args: tuple[Settings, str, bytes, Path] | None = None
        self._respawn = threading.Lock()
        for fn in functions:
            fn.host = self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def spawn(self, settings: Settings, broker_address: str, authkey: bytes, socket_dir: Path) -> None:
        """Start the process; :meth:`wait_ready` waits for its cold start."""
        self._spawn_args = (settings, broker_address, authkey, socket_dir)
        self._address = str(socket_dir / f"{self.handler.split('.')[0]}.sock")
        Path(self._address).unlink(missing_ok=True)
        self._authkey = authkey
        context = multiprocessing.get_context("spawn")  # a clean interpreter: no copied threads or locks
        self._ready = context.Event()
        specs = [fn.spec for fn in self.functions]
        self._process = context.Process(
            target=_child_main,
            args=(specs, settings, self._address, broker_address, authkey, self._ready),
            name=f"replyflow-{self.handler}",
            daemon=True,
        )
        self._process.start()

    def wait_ready(self) -> None:
        if not self._ready.wait(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"{self.handler}: its worker process did not start in {START_TIMEOUT_S:g} s")

    def _ensure_alive(self) -> None:
        """A process that died (a crashed instance) is replaced before the next invocation, as Lambda
        starts a new instance; the batch it was running failed and comes back on its own."""
        process = self._process
        if process is None or process.is_alive() or self._spawn_args is None:
            return
        with self._respawn:
            if self._process is not process:
                return
            log.warning(
                "%s: its worker process exited (%s); starting another", self.handler, process.exitcode
            )
            self._drop_connections()
            self.spawn(*self._spawn_args)
            self.wait_ready()

    def call(self, function_name: str, event: Any) -> tuple[str, Any, list[tuple[str, str, float]]]:
        self._ensure_alive()
        conn = self._connection()
        try:
            conn.send((function_name, event))
            answer: tuple[str, Any, list[tuple[str, str, float]]] = conn.recv()
        except (EOFError, OSError) as error:
            conn.close()
            raise RemoteInvocationError(f"{function_name}: the worker process is gone ({error!r})") from error
        self._idle.put(conn)
        return answer

    def _connection(self) -> Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return Client(self._address, family="AF_UNIX", authkey=self._authkey)

    def _drop_connections(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    def stop(self, timeout: float = 10.0) -> None:
        self._spawn_args = None  # no respawn from here on
        self._drop_connections()
        process = self._process
        if process is None:
            return
        if process.is_alive():
            process.terminate()
            process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join(timeout)
        self._process = None


class WorkerProcesses:
    """The worker processes of one stack and the broker's server they call back."""

    def __init__(self, broker: Broker, state_dir: Path) -> None:
        self._socket_dir = Path(tempfile.mkdtemp(prefix="rf-workers-", dir=_short_tmp(state_dir.resolve())))
        self._authkey = os.urandom(32)
        self._broker_address = str(self._socket_dir / "broker.sock")
        self._server = BrokerServer(broker, self._broker_address, self._authkey)
        self.hosts: list[WorkerHost] = []

    def start(self, functions: list[FunctionProcess], settings: Settings) -> None:
        """One process per handler, started side by side (their cold starts overlap)."""
        by_handler: dict[str, list[FunctionProcess]] = {}
        for fn in functions:
            by_handler.setdefault(fn.spec.handler, []).append(fn)
        self.hosts = [WorkerHost(handler, fns) for handler, fns in by_handler.items()]
        for host in self.hosts:
            host.spawn(settings, self._broker_address, self._authkey, self._socket_dir)
        for host in self.hosts:
            host.wait_ready()

    def pids(self) -> dict[str, int]:
        """Handler module (``processor``, ``sender``) -> its process id."""
        return {host.handler.split(".")[0]: pid for host in self.hosts if (pid := host.pid) is not None}

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()
        self._server.close()
        for path in self._socket_dir.glob("*.sock"):
            path.unlink(missing_ok=True)
        self._socket_dir.rmdir()


def _short_tmp(state_dir: Path) -> str:
    """A directory for the sockets: AF_UNIX paths are limited to about 100 bytes."""
    return tempfile.gettempdir() if len(str(state_dir)) > 60 else str(state_dir)


# ------------------------------------------------------------------------------- the function's side


class BrokerProxy:
    """The broker as the function process sees it (``BrokerPublisher``/``BrokerVisibility`` call it):
    one connection per thread, each call answered once the broker has done it."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self._address = address
        self._authkey = authkey
        self._local = threading.local()

    def send(self, queue: str, body: str, *, delay_seconds: int | None = None) -> None:
        self._call("send", (queue, [body], delay_seconds))

    def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None:
        """``QueuePublisher``: every body in one round trip, answered once the broker has them all."""
        if bodies:
            self._call("send", (queue, list(bodies), delay_seconds))

    def change_message_visibility(self, queue: str, receipt_handle: str, visibility_timeout: float) -> None:
        self._call("visibility", (queue, receipt_handle, visibility_timeout))

    def _call(self, op: str, args: tuple[Any, ...]) -> None:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = Client(self._address, family="AF_UNIX", authkey=self._authkey)
            self._local.conn = conn
        conn.send((op, args))
        status, value = conn.recv()
        if status != "ok":
            kind, message = value
            raise KNOWN_ERRORS.get(kind, RuntimeError)(message)


def _child_main(
    specs: list[FunctionSpec],
    settings: Settings,
    address: str,
    broker_address: str,
    authkey: bytes,
    ready: Any,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stack's stop ends this process (module docstring)
    _die_with_parent()
    from local.stack import LocalStack

    proxy = BrokerProxy(broker_address, authkey)
    roots = LocalStack.roots_for(settings, proxy, publisher=proxy)
    functions = {spec.logical_id: LambdaFunction(spec, roots=roots) for spec in specs}
    for fn in functions.values():
        fn.handler()  # the cold start happens here, not in the first batch
    _capture_emf()
    time_pool_checkouts(_pool_waits.put)
    listener = Listener(address, family="AF_UNIX", authkey=authkey)
    ready.set()
    while True:
        conn = listener.accept()
        threading.Thread(target=_serve_invocations, args=(functions, conn), daemon=True).start()


def _serve_invocations(functions: dict[str, LambdaFunction], conn: Connection) -> None:
    with conn:
        while True:
            try:
                name, event = conn.recv()
            except (EOFError, OSError):
                return
            fn = functions[name]
            emf: list[tuple[str, str, float]] = []
            token = _captured.set(emf)
            try:
                answer: tuple[str, Any, list[tuple[str, str, float]]] = ("ok", fn.invoke(event), emf)
            except Exception as error:
                log.exception("%s: the invocation raised", fn.name)
                answer = ("error", f"{type(error).__name__}: {error}", emf)
            finally:
                _captured.reset(token)
            emf.extend(_drained_pool_waits())
            conn.send(answer)


def _drained_pool_waits() -> list[tuple[str, str, float]]:
    """The checkout waits of this process since the last answer, as the stack's pool-wait samples
    (its record threads do not carry the invocation's context, so they are collected process-wide)."""
    waits: list[tuple[str, str, float]] = []
    with contextlib.suppress(queue.Empty):
        while True:
            waits.append((POOL_WAIT, "Seconds", _pool_waits.get_nowait()))
    return waits


def _capture_emf() -> None:
    """Every ``metrics.add_metric`` of an invocation also travels back to the stack with its answer."""
    from replyflow.observability import metrics

    original = metrics.add_metric

    def add_metric(name: str, unit: Any, value: float, resolution: Any = 60) -> None:
        original(name=name, unit=unit, value=value, resolution=resolution)
        captured = _captured.get()
        if captured is not None:
            captured.append((name, str(getattr(unit, "value", unit)), float(value)))

    metrics.add_metric = add_metric  # type: ignore[method-assign]


def _die_with_parent() -> None:
    """Exit when the stack's process exits, however it ends."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if not parent.is_alive():
        os._exit(1)

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
