"""Wiring of the scheduled jobs: builds the adapters, runs one job by name, reports it.

Adapters come from the local stack or a test when installed with ``core.override(...)``:

- ``archive_store``: an ``ArchiveStore``; otherwise S3 when ``ARCHIVE_BUCKET`` is set, else the
  directory ``ARCHIVE_DIR`` (``.local/archive``);
- ``queue_inspector``: the local broker (``stats()``); otherwise SQS GetQueueAttributes over
  ``QUEUE_URLS``;
- ``metrics_sink``: anything with ``record(name, value, unit, dimensions)`` (the local stack installs
  ``local.metrics_store``); metrics always go out as EMF too;
- ``graph_token_client``: a ``GraphTokenClient``; otherwise httpx against ``GRAPH_API_BASE_URL``;
- ``comment_reader``: a ``CommentReader`` for reconciliation; otherwise the same httpx client;
- ``clock``: anything with ``now()`` returning naive UTC.

Every run logs one summary line (counts, duration) and emits the counts as metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from replyflow.clock import utcnow
from replyflow.errors import ValidationError
from replyflow.observability import logger
from replyflow.services.jobs.common import Deadline, JobResult, emit_metrics, summary_line
from replyflow.services.jobs.ports import (
    ArchiveStore,
    CommentReader,
    GraphTokenClient,
    MetricsSink,
    QueueStatsSource,
)
from replyflow.wiring import core

if TYPE_CHECKING:
    from replyflow.adapters.graph_tokens import HttpxGraphTokenClient

JOB_NAMES = (
    "archive",
    "retention",
    "token-refresh",
    "usage-rollover",
    "queue-metrics",
    "webhook-subscriptions",
    "reconcile-comments",
    "ledger-sweep",
)
METRICS_NAMESPACE = "Replyflow"


class UnknownJobError(ValidationError):
    code = "unknown_job"


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


def metrics_sink() -> MetricsSink:
    local = core.component("metrics_sink")
    emf = EmfMetricsSink()
    return FanOutMetricsSink(emf, local) if local is not None else emf  # type: ignore[arg-type]


def archive_store() -> ArchiveStore:
    installed = core.component("archive_store")
    if installed is not None:
        return installed  # type: ignore[return-value]
    s = core.settings()
    if s.archive_bucket:
        from replyflow.adapters.archive_store import S3ArchiveStore

        return S3ArchiveStore(core.aws_client("s3"), s.archive_bucket)
    from replyflow.adapters.archive_store import DirectoryArchiveStore

    return DirectoryArchiveStore(s.archive_dir)


def queue_stats() -> QueueStatsSource:
    from replyflow.adapters.sqs_admin import BrokerQueueStats, SqsQueueStats

    inspector = core.component("queue_inspector")
    if inspector is not None:
        return BrokerQueueStats(inspector)  # type: ignore[arg-type]
    s = core.settings()
    if not s.queue_urls:
        raise RuntimeError("QUEUE_URLS is empty and no local broker is installed")
    return SqsQueueStats(core.aws_client("sqs"), s.queue_urls)


def graph_client() -> GraphTokenClient:
    installed = core.component("graph_token_client")
    if installed is not None:
        return installed  # type: ignore[return-value]
    return _httpx_graph()


def comment_reader() -> CommentReader:
    installed = core.component("comment_reader")
    if installed is not None:
        return installed  # type: ignore[return-value]
    return _httpx_graph()


def _httpx_graph() -> HttpxGraphTokenClient:
    from replyflow.adapters.graph_tokens import HttpxGraphTokenClient

    s = core.settings()
    return HttpxGraphTokenClient(
        base_url=s.graph_api_base_url, graph_base=s.graph_base, timeout=s.graph_timeout_seconds
    )


def sqs_dlq_target() -> tuple[Any, dict[str, str]]:
    """A boto3 SQS client and QUEUE_URLS, for ``replyflow.services.jobs.dlq`` (the DLQ CLI in AWS)."""
    return core.aws_client("sqs"), dict(core.settings().queue_urls)


def now() -> datetime:
    clock = core.component("clock")
    return clock.now() if clock is not None else utcnow()  # type: ignore[attr-defined]


# Jobs ---------------------------------------------------------------------------------------------


def _archive(deadline: Deadline) -> JobResult:
    from replyflow.services.jobs.archive import run_archive

    return run_archive(core.writer_sessions(), archive_store(), now=now(), deadline=deadline)


def _retention(deadline: Deadline) -> JobResult:
    from replyflow.services.jobs.retention import run_retention

    return run_retention(core.writer_sessions(), now=now(), deadline=deadline, require_archive=True)


def _token_refresh(deadline: Deadline) -> JobResult:
    from replyflow.services.jobs.token_refresh import run_token_refresh

    return run_token_refresh(
        core.writer_sessions(), graph_client(), core.cipher(), core.cache(), now=now(), deadline=deadline
    )


def _usage_rollover(deadline: Deadline) -> JobResult:
    """Period boundaries: subscriptions renew or end (cancelled ones fall to free), then the usage
    counters of the new period exist and agree with the ledger."""
    from replyflow.services.jobs.usage import run_usage_rollover
    from replyflow.services.subscriptions import settle_period_ends

    moment = now()
    settled = settle_period_ends(core.writer_sessions(), core.cache(), now=moment)
    result = run_usage_rollover(core.writer_sessions(), now=moment, deadline=deadline)
    result.counts.update({f"subscriptions_{name}": count for name, count in settled.items()})
    return result


def _queue_metrics(deadline: Deadline) -> JobResult:
    from replyflow.services.jobs.health import run_queue_metrics

    return run_queue_metrics(queue_stats(), metrics_sink(), deadline=deadline)


def _webhook_subscriptions(deadline: Deadline) -> JobResult:
    from replyflow.services.jobs.health import run_webhook_subscriptions

    return run_webhook_subscriptions(
        core.writer_sessions(),
        graph_client(),
        core.cipher(),
        core.cache(),
        app_id=core.settings().instagram_app_id,
        now=now(),
        deadline=deadline,
    )


def _reconcile_comments(deadline: Deadline) -> JobResult:
    from replyflow.services.jobs.reconcile import ReconcileLimits, run_reconcile_comments
    from replyflow.wiring import pipeline

    s = core.settings()
    limits = ReconcileLimits(
        max_calls=s.reconcile_max_calls_per_account, usage_ceiling_pct=s.reconcile_usage_ceiling_pct
    )
    return run_reconcile_comments(
        core.writer_sessions(),
        comment_reader(),
        core.cipher(),
        core.queue_publisher(),
        core.cache(),
        now=now(),
        deadline=deadline,
        limits=limits,
        pauses=pipeline.send_limiter(core.Clients(s)),
    )


class _PublisherOnUse:
    """The queue publisher, resolved at the first publish: a sweep with nothing to send runs anywhere."""

    def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None:
        core.queue_publisher().publish(queue, bodies, delay_seconds=delay_seconds)


def _ledger_sweep(deadline: Deadline) -> JobResult:
    from replyflow.services.jobs.ledger_sweep import run_ledger_sweep

    return run_ledger_sweep(core.writer_sessions(), _PublisherOnUse(), now=now(), deadline=deadline)


_JOBS: dict[str, Callable[[Deadline], JobResult]] = {
    "archive": _archive,
    "retention": _retention,
    "token-refresh": _token_refresh,
    "usage-rollover": _usage_rollover,
    "queue-metrics": _queue_metrics,
    "webhook-subscriptions": _webhook_subscriptions,
    "reconcile-comments": _reconcile_comments,
    "ledger-sweep": _ledger_sweep,
}


def run(name: str, *, deadline_seconds: float | None = None) -> dict[str, Any]:
    """Run one job now; log its summary line, emit its metrics, return its summary."""
    job = _JOBS.get(name)
    if job is None:
        raise UnknownJobError(f"unknown job {name!r}; known: {', '.join(JOB_NAMES)}")
    started = time.perf_counter()
    sink = metrics_sink()
    try:
        result = job(Deadline(deadline_seconds))
    except Exception:
        sink.record("JobFailed", 1, "Count", {"job": name})
        logger.exception(f"job {name} failed after {time.perf_counter() - started:.2f}s", extra={"job": name})
        raise
    result.duration_seconds = time.perf_counter() - started
    summary = result.summary()
    logger.info(summary_line(result), extra={"job_summary": summary})
    emit_metrics(result, sink)
    return summary
