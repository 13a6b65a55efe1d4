"""sends-{high,default,low} -> the sender service; the rows of one batch are leased together, its
records sent concurrently, and failures are reported record by record. The sends that went out are
settled together after the batch's Graph calls (``SendService.settle_sent``: one transaction per
database for their ledger and log rows); every other outcome is settled by its own record as it
happens."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from replyflow.gc_pause import collector_paused, first_call_paused

# A new instance's imports, and its first invocation, run with the cyclic collector paused: they
# build what lives as long as the instance (replyflow/gc_pause.py, docs/scaling.md#cold-starts).
with collector_paused(freeze=True):  # the modules live as long as the process
    from replyflow.domain.messages import SendJob
    from replyflow.observability import MetricUnit, logger, metrics, tracer
    from replyflow.services.send_reply import (
        POLICY_BLOCK_REASON,
        SEND_CONCURRENCY,
        SendOutcome,
        SentUnsettled,
    )
    from replyflow.services.sqs_batch import RetryBackoff, process_batch
    from replyflow.wiring.sender import sender_deps

if TYPE_CHECKING:
    from replyflow.wiring.roots import Handler, Roots

# Metric names the CloudWatch dashboard and alarms read (infra/observability.yaml).
METRIC_BY_OUTCOME = {
    "sent": "MessagesSent",
    "deferred": "SendsDeferred",
    "skipped": "SendsSkipped",
    "failed": "SendsFailed",
}
# Outcomes an operator must act on, counted again on their own for alarms (docs/instagram.md#errors).
ALERT_METRIC_BY_REASON = {
    POLICY_BLOCK_REASON: "SendsBlocked",
    "misconfigured": "SendsMisconfigured",
}


class Sends(Protocol):
    def send(self, job: SendJob) -> SendOutcome: ...

    def attempt(self, job: SendJob) -> SendOutcome | SentUnsettled: ...

    def attempt_batch(self, jobs: Sequence[SendJob]) -> list[SendOutcome | SentUnsettled | Exception]: ...

    def settle_sent(self, sent: Sequence[SentUnsettled]) -> list[SendOutcome | Exception]: ...


class SenderDeps(Protocol):
    """What this function reads of ``PipelineDeps``."""

    @property
    def sender(self) -> Sends: ...

    @property
    def retry_backoff(self) -> RetryBackoff | None: ...


def make_handler(deps: Callable[[], SenderDeps], *, freeze: bool = False) -> Handler:
    """The entry point over the dependencies ``deps()`` returns (read at each invocation); with
    ``freeze``, what its first call built is kept out of later collections (a Lambda instance's
    entry: ``replyflow/gc_pause.py``)."""

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        pipeline = deps()
        outcomes: list[SendOutcome] = []  # appended from worker threads; metrics are added on this thread

        def handle(body: str) -> None:
            outcomes.append(pipeline.sender.send(SendJob.from_json(body)))

        def together(records: Sequence[dict[str, Any]]) -> dict[int, Exception | None]:
            return _together(pipeline.sender, records, outcomes)

        response = process_batch(
            event, handle, max_workers=SEND_CONCURRENCY, backoff=pipeline.retry_backoff, together=together
        )
        for status, count in Counter(outcome.status for outcome in outcomes).items():
            name = METRIC_BY_OUTCOME.get(status, f"Sends{status.title()}")
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
        alerts = Counter(ALERT_METRIC_BY_REASON.get(outcome.reason or "") for outcome in outcomes)
        for alert, count in alerts.items():
            if alert is not None:
                metrics.add_metric(name=alert, unit=MetricUnit.Count, value=count)
        metrics.add_metric(
            name="SendsErrored", unit=MetricUnit.Count, value=len(response["batchItemFailures"])
        )
        metrics.flush_metrics()
        return response

    return first_call_paused(lambda_handler, freeze=freeze)


def _together(
    sender: Sends, records: Sequence[dict[str, Any]], outcomes: list[SendOutcome]
) -> dict[int, Exception | None]:
    """The records' rows leased together and their limiter slots taken together, every record's send
    on a thread of the sender's pool up to its Graph call (``SendService.attempt_batch``), then the
    sends that went out settled together. A record whose
    body does not decode is left to be handled alone."""
    jobs: list[tuple[int, SendJob]] = []
    for i, record in enumerate(records):
        try:
            jobs.append((i, SendJob.from_json(record.get("body") or "")))
        except Exception:  # noqa: S112 - handled alone, where it fails and is logged
            continue
    attempts = sender.attempt_batch([job for _, job in jobs])
    unsettled = [(i, a) for (i, _job), a in zip(jobs, attempts, strict=True) if isinstance(a, SentUnsettled)]
    settled = dict(zip((i for i, _ in unsettled), sender.settle_sent([a for _, a in unsettled]), strict=True))
    done: dict[int, Exception | None] = {}
    for (i, _job), attempt in zip(jobs, attempts, strict=True):
        outcome = settled.get(i, attempt)
        if isinstance(outcome, Exception):
            done[i] = outcome
        elif isinstance(outcome, SendOutcome):
            outcomes.append(outcome)
            done[i] = None
    return done


def bind(roots: Roots) -> Handler:
    """This function on the local stack's dependencies."""
    return make_handler(lambda: roots.pipeline)


lambda_handler = make_handler(sender_deps, freeze=True)
