"""events-{high,default,low} -> the processor service, with a partial batch response. A billing
message (a verified Stripe event) goes to ``services.billing.apply_event``, a flow timer job to its
firing, instead.

The event messages of a batch are first processed together (``EventProcessor.process_many``: a
few transactions for the batch, ``BATCH_PARTS`` at once; one on SQLite); the records that did not
settle there (billing messages, flow timers, and every event of a transaction that rolled back) run
alone, on one thread per pooled database connection (``DATABASE_POOL_SIZE``, 4 for the processor
functions in template.yaml): a thread beyond the pool would take an overflow
connection, which SQLAlchemy opens for the record and closes after it, a connect (and its CPU) per
record."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from replyflow.domain.messages import BillingEventMessage, EventMessage, FlowTimerJob, decode_event_message
from replyflow.observability import MetricUnit, bind_tenant, logger, metrics, tracer
from replyflow.services.sqs_batch import process_batch
from replyflow.wiring.pipeline import PipelineDeps, process_deps

# Two parts: one part's round trips overlap the other's work. Each part pays its own claims, contacts,
# quota, decisions and commit, so four (one per pooled connection) cost more than they overlapped:
# docs/scaling.md#batch-transactions-in-the-processor-and-the-sender-beforeafter-in-one-run.
BATCH_PARTS = 2

if TYPE_CHECKING:
    from replyflow.services.process_event import ProcessResult
    from replyflow.wiring.roots import Handler, Roots


def make_handler(deps: Callable[[], PipelineDeps]) -> Handler:
    """The entry point over the dependencies ``deps()`` returns (read at each invocation)."""

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        pipeline = deps()
        outcomes: list[str] = []  # appended from worker threads; metrics are added on this thread

        def handle(body: str) -> None:
            message = decode_event_message(body)
            if isinstance(message, BillingEventMessage):
                outcomes.append(_apply_billing(pipeline, message))
                return
            if isinstance(message, FlowTimerJob):
                fired = fire_flow_timer(pipeline, message)
                outcomes.append("timer_fired" if fired else "timer_stale")
                return
            count(pipeline.processor.process(message))

        def count(result: ProcessResult) -> None:
            outcomes.append("duplicate" if result.duplicate else "processed")
            outcomes.extend("queued" for _ in result.queued)

        def together(records: Sequence[dict[str, Any]]) -> dict[int, Exception | None]:
            return _together(pipeline, records, count)

        response = process_batch(
            event,
            handle,
            max_workers=pipeline.settings.database_pool_size,
            backoff=pipeline.retry_backoff,
            together=together,
        )
        for name in ("processed", "duplicate", "queued", "billing", "timer_fired", "timer_stale"):
            metrics.add_metric(
                name=f"Events{name.title().replace('_', '')}",
                unit=MetricUnit.Count,
                value=outcomes.count(name),
            )
        errored = len(response["batchItemFailures"])
        metrics.add_metric(name="EventsErrored", unit=MetricUnit.Count, value=errored)
        metrics.flush_metrics()
        return response

    return lambda_handler


def _together(
    pipeline: PipelineDeps, records: Sequence[dict[str, Any]], count: Callable[[ProcessResult], None]
) -> dict[int, Exception | None]:
    """The batch's event messages in one go; a record that does not decode, or is not an event,
    is left to be handled alone (and fails alone)."""
    events: list[tuple[int, EventMessage]] = []
    for i, record in enumerate(records):
        try:
            message = decode_event_message(record.get("body") or "")
        except Exception:  # noqa: S112 - handled alone, where it fails and is logged
            continue
        if isinstance(message, EventMessage):
            events.append((i, message))
    if len(events) < 2:
        return {}
    settled: dict[int, Exception | None] = {}
    done = pipeline.processor.process_many([message for _, message in events], parallel=_parts(pipeline))
    for (i, _message), outcome in zip(events, done, strict=True):
        if isinstance(outcome, Exception):
            settled[i] = outcome
        elif outcome is not None:
            count(outcome)
            settled[i] = None
    return settled


def _parts(pipeline: PipelineDeps) -> int:
    """Transactions a batch is split in, run at once: ``BATCH_PARTS`` (at most one per pooled
    connection), one on SQLite, whose single writer lock would queue them."""
    settings = pipeline.settings
    return 1 if settings.database_url.startswith("sqlite") else min(BATCH_PARTS, settings.database_pool_size)


def _apply_billing(pipeline: PipelineDeps, message: BillingEventMessage) -> str:
    from replyflow.services.billing import apply_event

    outcome = apply_event(
        pipeline.clients.writer_sessions,
        pipeline.clients.cache,
        pipeline.billing_api,
        message.event,
        now=pipeline.clock.now(),
        grace=pipeline.billing_grace,
    )
    return "duplicate" if outcome == "duplicate" else "billing"


def fire_flow_timer(pipeline: PipelineDeps, job: FlowTimerJob) -> bool:
    """A flow timer whose SQS delay has passed (``services.jobs.flow_timers.fire_one``), on its
    tenant's shard (refused while a move holds the tenant: the record is deferred)."""
    from replyflow.services.jobs.flow_timers import fire_one

    bind_tenant(job.tenant_id)
    return fire_one(
        pipeline.clients.writer_sessions,
        pipeline.publisher,
        pipeline.flow_runner,
        job.tenant_id,
        job.timer_id,
        now=pipeline.clock.now(),
    )


def bind(roots: Roots) -> Handler:
    """This function on the local stack's dependencies."""
    return make_handler(lambda: roots.pipeline)


lambda_handler = make_handler(process_deps)
