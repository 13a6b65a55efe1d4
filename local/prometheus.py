"""``GET /metrics`` on the local stack: Prometheus text format, named like the CloudWatch metrics.

In AWS the functions emit CloudWatch EMF (``replyflow.observability.metrics``) and API Gateway, Lambda,
SQS and RDS Proxy publish their own metrics; the dashboard in infra/observability.yaml reads them.
Locally :class:`StackMetrics` keeps one ``prometheus_client`` registry per stack that mirrors them,
hooked around the handlers (no handler code changes), and the gateway serves it at ``/metrics``:

- every EMF metric a handler or service adds (``metrics.add_metric``) is bridged: a count becomes the
  counter ``replyflow_<Name>_total``, a time (ms or s) the histogram ``replyflow_<Name>_seconds``
  (``RecordDuration``: the worker's processing time per record), labelled with the ``function``
  that emitted it;
- per function invocation, as Lambda publishes: ``replyflow_Invocations_total``,
  ``replyflow_Errors_total`` (the handler raised), ``replyflow_Duration_seconds`` and, for SQS workers,
  ``replyflow_BatchItemFailures_total``;
- per API route, as API Gateway publishes: ``replyflow_Latency_seconds`` (a histogram: p50/p95/p99 by
  ``histogram_quantile``), ``replyflow_Count_total``, ``replyflow_4XXError_total`` and
  ``replyflow_5XXError_total``. The route is the method and the path with its ids replaced by
  ``{id}`` (API Gateway's proxy resource ``/v1/{proxy+}`` would put the whole API in one series);
  a 404 or an unmatched path is counted under the template's route, so random paths add no series;
- read from the broker at each scrape, like the queue-metrics job (``services/jobs/health.py``):
  ``replyflow_QueueVisibleMessages``, ``replyflow_QueueInFlightMessages``,
  ``replyflow_QueueDelayedMessages``, ``replyflow_QueueOldestMessageAge`` (seconds) and
  ``replyflow_QueueDlqMessages`` per queue (``queue``, ``dlq`` = whether it is a DLQ);
- the SQLAlchemy pools of the writer and reader engines (CloudWatch: RDS Proxy's
  ``DatabaseConnections``): ``replyflow_DatabasePoolCheckedOut``, ``replyflow_DatabasePoolOverflow``,
  ``replyflow_DatabasePoolSize`` per ``engine``, and ``replyflow_DatabasePoolWait_seconds``, the time
  a session waited for a connection (a histogram over every pool of the stack and of the function
  processes, which send their waits back with each answer).

prometheus_client is a development dependency only: nothing in the Lambda layer imports this module.
"""

from __future__ import annotations

import contextvars
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from local.broker import Broker
    from local.gateway import HttpRequest, HttpResponse, LocalGateway
    from local.lambda_context import LambdaFunction
    from replyflow.wiring.core import Clients

PREFIX = "replyflow"
METRICS_PATH = "/metrics"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_TIME_UNITS = {"Milliseconds": 0.001, "Seconds": 1.0, "Microseconds": 0.000001}
_ID_SEGMENT = re.compile(r"^(?=.*\d)[A-Za-z0-9_\-]{8,}$|^\d+$")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_]")

current_function: contextvars.ContextVar[str] = contextvars.ContextVar("current_function", default="")


def route_label(method: str, path: str) -> str:
    """``GET /v1/templates/3f2a...`` -> ``GET /v1/templates/{id}``."""
    parts = ["{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/")]
    return f"{method.upper()} {'/'.join(parts) or '/'}"


class _BrokerCollector(Collector):
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["queue", "dlq"]
        families = {
            "visible": GaugeMetricFamily(f"{PREFIX}_QueueVisibleMessages", "Messages visible", labels=labels),
            "in_flight": GaugeMetricFamily(
                f"{PREFIX}_QueueInFlightMessages", "Messages received, not deleted", labels=labels
            ),
            "delayed": GaugeMetricFamily(f"{PREFIX}_QueueDelayedMessages", "Messages delayed", labels=labels),
            "oldest_age_seconds": GaugeMetricFamily(
                f"{PREFIX}_QueueOldestMessageAge", "Age of the oldest message, seconds", labels=labels
            ),
        }
        dlq_depth = GaugeMetricFamily(
            f"{PREFIX}_QueueDlqMessages", "Messages in the queue's dead-letter queue", labels=["queue"]
        )
        for name, stats in sorted(self._broker.stats().items()):
            label_values = [name, "true" if stats["is_dlq"] else "false"]
            for field, family in families.items():
                family.add_metric(label_values, float(stats[field]))
            if stats["dlq"] is not None:
                dlq_depth.add_metric([name], float(stats["dlq"]))
        yield from families.values()
        yield dlq_depth


class _PoolCollector(Collector):
    def __init__(self, clients: Callable[[], Clients | None]) -> None:
        self._clients = clients

    def collect(self) -> Iterator[GaugeMetricFamily]:
        checked_out = GaugeMetricFamily(
            f"{PREFIX}_DatabasePoolCheckedOut", "Connections checked out of the pool", labels=["engine"]
        )
        overflow = GaugeMetricFamily(
            f"{PREFIX}_DatabasePoolOverflow", "Connections open beyond the pool size", labels=["engine"]
        )
        size = GaugeMetricFamily(f"{PREFIX}_DatabasePoolSize", "The pool's size", labels=["engine"])
        for engine, pool in self._pools():
            checked_out.add_metric([engine], float(pool.checkedout()))
            overflow.add_metric([engine], float(max(0, pool.overflow())))
            size.add_metric([engine], float(pool.size()))
        yield from (checked_out, overflow, size)

    def _pools(self) -> list[tuple[str, Any]]:
        clients = self._clients()
        if clients is None:
            return []
        seen: dict[int, str] = {}
        pools: list[tuple[str, Any]] = []
        for engine in ("writer", "reader"):
            factory = clients.__dict__.get(f"{engine}_sessions")  # only engines already built
            bind = factory.kw.get("bind") if factory is not None else None
            pool = getattr(bind, "pool", None)
            if pool is None or not hasattr(pool, "checkedout") or id(pool) in seen:
                continue
            seen[id(pool)] = engine
            pools.append((engine, pool))
        return pools


POOL_WAIT = "DatabasePoolWait"


def time_pool_checkouts(observe: Callable[[float], None]) -> Callable[[], None]:
    """Time every QueuePool checkout of this process (around ``QueuePool._do_get``, where a checkout
    blocks when the pool is empty) into ``observe``; returns the undo."""
    from sqlalchemy.pool import QueuePool

    original = QueuePool._do_get

    def timed_do_get(pool: QueuePool) -> Any:
        started = time.perf_counter()
        try:
            return original(pool)
        finally:
            observe(time.perf_counter() - started)

    QueuePool._do_get = timed_do_get  # type: ignore[method-assign,assignment]

    def undo() -> None:
        QueuePool._do_get = original  # type: ignore[method-assign]

    return undo


class StackMetrics:
    """The local stack's registry and its hooks; :meth:`close` removes the process-wide ones."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.invocations = Counter(f"{PREFIX}_Invocations", "Function invocations", ["function"], registry=r)
        self.errors = Counter(f"{PREFIX}_Errors", "Invocations that raised", ["function"], registry=r)
        self.duration = Histogram(
            f"{PREFIX}_Duration_seconds", "Invocation time", ["function"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_failures = Counter(
            f"{PREFIX}_BatchItemFailures", "SQS records a worker reported failed", ["function"], registry=r
        )
        self.latency = Histogram(
            f"{PREFIX}_Latency_seconds", "API latency", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.count = Counter(f"{PREFIX}_Count", "API requests", ["route"], registry=r)
        self.client_errors = Counter(f"{PREFIX}_4XXError", "API 4xx answers", ["route"], registry=r)
        self.server_errors = Counter(f"{PREFIX}_5XXError", "API 5xx answers", ["route"], registry=r)
        self.pool_wait = Histogram(
            f"{PREFIX}_DatabasePoolWait_seconds",
            "Time a session waited for a pooled connection",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._emf: dict[str, Counter | Histogram] = {}
        self._lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []

    # ---------------------------------------------------------------------------- exposition

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    # --------------------------------------------------------------------------------- hooks

    def instrument_function(self, fn: LambdaFunction) -> None:
        """Times every invocation of ``fn`` (gateway and broker call ``fn.invoke``) and names the
        function for the EMF metrics its handler adds."""
        original = fn.invoke
        name = fn.name

        def invoke(event: Any) -> Any:
            token = current_function.set(name)
            started = time.perf_counter()
            self.invocations.labels(name).inc()
            try:
                result = original(event)
            except Exception:
                self.errors.labels(name).inc()
                raise
            finally:
                self.duration.labels(name).observe(time.perf_counter() - started)
                current_function.reset(token)
            if isinstance(result, dict) and isinstance(result.get("batchItemFailures"), list):
                self.batch_failures.labels(name).inc(len(result["batchItemFailures"]))
            return result

        fn.invoke = invoke  # type: ignore[method-assign]

    def instrument_gateway(self, gateway: LocalGateway) -> None:
        """Serves ``GET /metrics`` and records each API request's latency and status by route."""
        from local.gateway import HttpResponse

        original = gateway.handle
        template = gateway.template

        def handle(request: HttpRequest) -> HttpResponse:
            if request.path == METRICS_PATH and request.method.upper() == "GET":
                body, content_type = self.render()
                return HttpResponse(200, [("Content-Type", content_type)], body)
            started = time.perf_counter()
            response = original(request)
            if request.path == "/_local" or request.path.startswith("/_local/"):
                return response
            elapsed = time.perf_counter() - started
            route = route_label(request.method, request.path)
            if response.status == 404:
                match = template.match(request.method, request.path)
                route = f"{request.method.upper()} {match.route.resource if match else 'unmatched'}"
            self.latency.labels(route).observe(elapsed)
            self.count.labels(route).inc()
            if 400 <= response.status < 500:
                self.client_errors.labels(route).inc()
            elif response.status >= 500:
                self.server_errors.labels(route).inc()
            return response

        gateway.handle = handle  # type: ignore[method-assign]

    def bridge_emf(self) -> None:
        """Every ``metrics.add_metric`` of this process also lands in the registry."""
        from replyflow.observability import metrics

        original = metrics.add_metric

        def add_metric(name: str, unit: Any, value: float, resolution: Any = 60) -> None:
            original(name=name, unit=unit, value=value, resolution=resolution)
            self.observe_emf(name, getattr(unit, "value", unit), value)

        metrics.add_metric = add_metric  # type: ignore[method-assign]
        self._undo.append(lambda: metrics.__dict__.pop("add_metric", None))

    def observe_emf(self, name: str, unit: str, value: float) -> None:
        if name == POOL_WAIT:  # a function process's checkout wait (local/worker_process.py)
            self.pool_wait.observe(value)
            return
        function = current_function.get() or "unknown"
        scale = _TIME_UNITS.get(str(unit))
        metric = self._emf_metric(_NAME_CHARS.sub("_", name), histogram=scale is not None)
        if isinstance(metric, Histogram):
            metric.labels(function).observe(value * (scale or 1.0))
        else:
            metric.labels(function).inc(max(0.0, value))

    def _emf_metric(self, name: str, *, histogram: bool) -> Counter | Histogram:
        key = f"{name}:{'h' if histogram else 'c'}"
        metric = self._emf.get(key)
        if metric is None:
            with self._lock:
                metric = self._emf.get(key)
                if metric is None:
                    if histogram:
                        metric = Histogram(
                            f"{PREFIX}_{name}_seconds",
                            f"EMF metric {name}",
                            ["function"],
                            buckets=LATENCY_BUCKETS,
                            registry=self.registry,
                        )
                    else:
                        metric = Counter(
                            f"{PREFIX}_{name}", f"EMF metric {name}", ["function"], registry=self.registry
                        )
                    self._emf[key] = metric
        return metric

    def watch_broker(self, broker: Broker) -> None:
        self.registry.register(_BrokerCollector(broker))

    def watch_pools(self, clients: Callable[[], Clients | None]) -> None:
        """Pool gauges of the engines ``clients`` has built, and the checkout wait of every QueuePool
        of the process (a function's own process sends its waits back with each answer)."""
        self.registry.register(_PoolCollector(clients))
        self._undo.append(time_pool_checkouts(self.pool_wait.observe))

    def close(self) -> None:
        while self._undo:
            self._undo.pop()()
