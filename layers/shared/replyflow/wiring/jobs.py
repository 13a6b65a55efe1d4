"""The composition root of the scheduled jobs, ``JobsDeps``: runs one job by name and reports it.

``build_jobs(settings)`` gives the real adapters; the local stack and tests pass theirs:

- ``archive``: an ``ArchiveStore``; otherwise S3 when ``ARCHIVE_BUCKET`` is set, else the directory
  ``ARCHIVE_DIR`` (``.local/archive``);
- ``queue_stats``: the local broker's (``BrokerQueueStats``); otherwise SQS GetQueueAttributes over
  ``QUEUE_URLS``, resolved when the queue-metrics job first reads it;
- ``metrics``: a ``MetricsSink`` that gets every data point besides EMF (the local stack passes
  ``local.metrics_store``); metrics always go out as EMF too;
- ``graph``: a ``GraphTokenClient``; ``comments``: a ``CommentReader`` for reconciliation;
  otherwise one httpx client against ``GRAPH_API_BASE_URL`` for both;
- ``publisher``, ``pauses`` (the send limiter's), ``clock`` (anything with ``now()`` in naive UTC).

Every run logs one summary line (counts, duration) and emits the counts as metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from replyflow.clock import utcnow
from replyflow.errors import ValidationError
from replyflow.observability import logger
from replyflow.ports import (
    ArchiveStore,
    CommentReader,
    GraphPauses,
    GraphTokenClient,
    MetricsSink,
    NowClock,
    QueueStatsSource,
)
from replyflow.services.jobs.common import Deadline, JobResult, emit_metrics, summary_line
from replyflow.settings import Settings
from replyflow.wiring.core import Clients

if TYPE_CHECKING:
    from replyflow.adapters.graph_tokens import HttpxGraphTokenClient
    from replyflow.ports import QueuePublisher
    from replyflow.services.jobs.ports import QueueStats

JOB_NAMES = (
    "archive",
    "retention",
    "token-refresh",
    "usage-rollover",
    "queue-metrics",
    "webhook-subscriptions",
    "reconcile-comments",
    "ledger-sweep",
    "partitions",
    "flow-timers",
)
METRICS_NAMESPACE = "Replyflow"


class UnknownJobError(ValidationError):
    code = "unknown_job"


class SystemNow:
    def now(self) -> datetime:
        return utcnow()


# Adapters -----------------------------------------------------------------------------------------


class EmfMetricsSink:
    """One EMF blob per data point, so each can carry its own dimensions."""

    def record(self, name: str, value: float, unit: str, dimensions: Mapping[str, str]) -> None:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        with single_metric(
            name=name, unit=MetricUnit(unit), value=value, namespace=METRICS_NAMESPACE
        ) as metric:
            for key, dim in dimensions.items():
                metric.add_dimension(name=key, value=dim)


class FanOutMetricsSink:
    def __init__(self, *sinks: MetricsSink) -> None:
        self._sinks = sinks

    def record(self, name: str, value: float, unit: str, dimensions: Mapping[str, str]) -> None:
        for sink in self._sinks:
            sink.record(name, value, unit, dimensions)


class SqsStatsOnUse:
    """SQS queue attributes over ``QUEUE_URLS``, built at the first read: only queue-metrics reads."""

    def __init__(self, clients: Clients) -> None:
        self._clients = clients

    def stats(self) -> Mapping[str, QueueStats]:
        from replyflow.adapters.sqs_admin import SqsQueueStats

        urls = self._clients.settings.queue_urls
        if not urls:
            raise RuntimeError("QUEUE_URLS is empty and no local broker is installed")
        return SqsQueueStats(self._clients.sqs, urls).stats()


@dataclass(frozen=True, eq=False)
class JobsDeps:
    """What the scheduled jobs need; one instance per process, shared by every run."""

    settings: Settings
    clients: Clients
    publisher: QueuePublisher
    archive: ArchiveStore
    queue_stats: QueueStatsSource
    metrics: MetricsSink
    graph: GraphTokenClient
    comments: CommentReader
    pauses: GraphPauses
    clock: NowClock


def build_jobs(
    settings: Settings,
    *,
    clients: Clients | None = None,
    publisher: QueuePublisher | None = None,
    archive: ArchiveStore | None = None,
    queue_stats: QueueStatsSource | None = None,
    metrics: MetricsSink | None = None,
    graph: GraphTokenClient | None = None,
    comments: CommentReader | None = None,
    pauses: GraphPauses | None = None,
    clock: NowClock | None = None,
) -> JobsDeps:
    """The jobs' dependencies; every argument left out is the real adapter for ``settings``."""
    from replyflow.wiring.pipeline import send_limiter

    shared = clients or Clients(settings)
    http = None if graph is not None and comments is not None else _httpx_graph(settings)
    emf = EmfMetricsSink()
    return JobsDeps(
        settings=settings,
        clients=shared,
        publisher=publisher or shared.sqs_publisher,
        archive=archive or archive_store(shared),
        queue_stats=queue_stats or SqsStatsOnUse(shared),
        metrics=FanOutMetricsSink(emf, metrics) if metrics is not None else emf,
        graph=graph or _required(http),
        comments=comments or _required(http),
        pauses=pauses or send_limiter(shared),
        clock=clock or SystemNow(),
    )


def _required(http: HttpxGraphTokenClient | None) -> HttpxGraphTokenClient:
    assert http is not None  # built above whenever graph or comments was left out
    return http


def archive_store(clients: Clients) -> ArchiveStore:
    s = clients.settings
    if s.archive_bucket:
        from replyflow.adapters.archive_store import S3ArchiveStore

        return S3ArchiveStore(clients.aws_client("s3"), s.archive_bucket)
    from replyflow.adapters.archive_store import DirectoryArchiveStore

    return DirectoryArchiveStore(s.archive_dir)


def _httpx_graph(settings: Settings) -> HttpxGraphTokenClient:
    from replyflow.adapters.graph_tokens import HttpxGraphTokenClient

    return HttpxGraphTokenClient(
        base_url=settings.graph_api_base_url,
        graph_base=settings.graph_base,
        timeout=settings.graph_timeout_seconds,
    )


# Jobs ---------------------------------------------------------------------------------------------


def _archive(deps: JobsDeps, deadline: Deadline) -> JobResult:
    """Pending data deletions are erased from the archive first, then new rows are archived."""
    from replyflow.services.jobs.archive import run_archive
    from replyflow.services.jobs.archive_erasure import run_archive_erasure

    sessions = deps.clients.writer_sessions
    erased = run_archive_erasure(sessions, deps.archive, now=deps.clock.now(), deadline=deadline)
    result = run_archive(sessions, deps.archive, now=deps.clock.now(), deadline=deadline)
    result.counts.update({f"erasure_{name}": count for name, count in erased.counts.items()})
    result.stopped_early = result.stopped_early or erased.stopped_early
    return result


def _retention(deps: JobsDeps, deadline: Deadline) -> JobResult:
    from replyflow.services.jobs.retention import run_retention

    return run_retention(
        deps.clients.writer_sessions, now=deps.clock.now(), deadline=deadline, require_archive=True
    )


def _token_refresh(deps: JobsDeps, deadline: Deadline) -> JobResult:
    from replyflow.services.jobs.token_refresh import run_token_refresh

    return run_token_refresh(
        deps.clients.writer_sessions,
        deps.graph,
        deps.clients.cipher,
        deps.clients.cache,
        now=deps.clock.now(),
        deadline=deadline,
    )


def _usage_rollover(deps: JobsDeps, deadline: Deadline) -> JobResult:
    """Period boundaries: subscriptions renew or end (cancelled ones fall to free), past-due ones whose
    grace period ended fall to free (``services.billing.settle_grace``), then the usage
    counters of the new period exist and agree with the ledger."""
    from replyflow.services.billing import settle_grace
    from replyflow.services.jobs.usage import run_usage_rollover
    from replyflow.services.subscriptions import settle_period_ends

    moment = deps.clock.now()
    settled = settle_period_ends(deps.clients.writer_sessions, deps.clients.cache, now=moment)
    settled["grace_ended"] = settle_grace(deps.clients.writer_sessions, deps.clients.cache, now=moment)
    result = run_usage_rollover(deps.clients.writer_sessions, now=moment, deadline=deadline)
    result.counts.update({f"subscriptions_{name}": count for name, count in settled.items()})
    return result


def _queue_metrics(deps: JobsDeps, deadline: Deadline) -> JobResult:
    from replyflow.services.jobs.health import run_queue_metrics

    return run_queue_metrics(deps.queue_stats, deps.metrics, deadline=deadline)


def _webhook_subscriptions(deps: JobsDeps, deadline: Deadline) -> JobResult:
    """With shards, first the directory's account entries of this run's shard are repaired
    (``db.shards.repair_account_directory``): webhooks route through them."""
    from replyflow.services.jobs.health import run_webhook_subscriptions

    router = deps.clients.shard_router
    repaired: dict[str, int] = {}
    if router is not None:
        from replyflow.db.shards import repair_account_directory

        repaired = repair_account_directory(router, router.current_shard())
    result = run_webhook_subscriptions(
        deps.clients.writer_sessions,
        deps.graph,
        deps.clients.cipher,
        deps.clients.cache,
        app_id=deps.settings.instagram_app_id,
        now=deps.clock.now(),
        deadline=deadline,
    )
    result.counts.update(repaired)
    return result


def _reconcile_comments(deps: JobsDeps, deadline: Deadline) -> JobResult:
    from replyflow.services.jobs.reconcile import ReconcileLimits, run_reconcile_comments

    s = deps.settings
    limits = ReconcileLimits(
        max_calls=s.reconcile_max_calls_per_account, usage_ceiling_pct=s.reconcile_usage_ceiling_pct
    )
    return run_reconcile_comments(
        deps.clients.writer_sessions,
        deps.comments,
        deps.clients.cipher,
        deps.publisher,
        deps.clients.cache,
        now=deps.clock.now(),
        deadline=deadline,
        limits=limits,
        pauses=deps.pauses,
    )


def _ledger_sweep(deps: JobsDeps, deadline: Deadline) -> JobResult:
    from replyflow.services.jobs.ledger_sweep import run_ledger_sweep

    return run_ledger_sweep(
        deps.clients.writer_sessions, deps.publisher, now=deps.clock.now(), deadline=deadline
    )


def _partitions(deps: JobsDeps, deadline: Deadline) -> JobResult:
    from replyflow.services.jobs.partitions import run_partition_maintenance

    return run_partition_maintenance(deps.clients.writer_sessions, now=deps.clock.now(), deadline=deadline)


def _flow_timers(deps: JobsDeps, deadline: Deadline) -> JobResult:
    from replyflow.services.flow_runs import FlowRunner
    from replyflow.services.jobs.flow_timers import run_flow_timers
    from replyflow.wiring.pipeline import GraphOnUse

    # The follow status is read only when a timer leads to a ``follows`` condition.
    runner = FlowRunner(follow_status=GraphOnUse(deps.settings), cipher=deps.clients.cipher)
    return run_flow_timers(
        deps.clients.writer_sessions, deps.publisher, runner, now=deps.clock.now(), deadline=deadline
    )


_JOBS: dict[str, Callable[[JobsDeps, Deadline], JobResult]] = {
    "archive": _archive,
    "retention": _retention,
    "token-refresh": _token_refresh,
    "usage-rollover": _usage_rollover,
    "queue-metrics": _queue_metrics,
    "webhook-subscriptions": _webhook_subscriptions,
    "reconcile-comments": _reconcile_comments,
    "ledger-sweep": _ledger_sweep,
    "partitions": _partitions,
    "flow-timers": _flow_timers,
}


def run(deps: JobsDeps, name: str, *, deadline_seconds: float | None = None) -> dict[str, Any]:
    """Run one job now; log its summary line, emit its metrics, return its summary."""
    job = _JOBS.get(name)
    if job is None:
        raise UnknownJobError(f"unknown job {name!r}; known: {', '.join(JOB_NAMES)}")
    deadline = Deadline(deadline_seconds)
    router = deps.clients.shard_router
    if router is None or name in SHARD_AGNOSTIC_JOBS:
        return _run_once(deps, name, job, deadline)
    from replyflow.db.shards import on_shard

    summaries: dict[str, Any] = {}
    for shard in router.names:  # one run per shard, sharing the invocation's time budget
        with on_shard(shard):
            summaries[shard] = _run_once(deps, name, job, deadline)
    return {"job": name, "shards": summaries}


# Jobs that read no shard table: run once, not once per shard.
SHARD_AGNOSTIC_JOBS = frozenset({"queue-metrics"})


def _run_once(
    deps: JobsDeps, name: str, job: Callable[[JobsDeps, Deadline], JobResult], deadline: Deadline
) -> dict[str, Any]:
    started = time.perf_counter()
    sink = deps.metrics
    try:
        result = job(deps, deadline)
    except Exception:
        sink.record("JobFailed", 1, "Count", {"job": name})
        logger.exception(f"job {name} failed after {time.perf_counter() - started:.2f}s", extra={"job": name})
        raise
    result.duration_seconds = time.perf_counter() - started
    summary = result.summary()
    logger.info(summary_line(result), extra={"job_summary": summary})
    emit_metrics(result, sink)
    return summary
