"""Pipeline workers in-process, one process, on the real MariaDB and Redis (as in AWS with Aurora and
ElastiCache), against the Instagram sandbox over HTTP on 127.0.0.1.

Setup (not timed): a fresh MariaDB database, migrated; the demo tenant plus extra tenants on the
Business plan holding ``accounts`` more Instagram accounts, each with a sandbox-issued token,
``hourly_send_budget=750`` and the demo's comment automation (keyword LINK -> private reply); an empty
Redis database (caches, cooldowns, limiter windows start empty); ``PER_SECOND_SEND_CAP=100``. Comment
events (one per webhook POST, a commenter of its own each, accounts round-robin) are turned into
events-queue bodies by running the real webhook handler with a collecting publisher.

Measured, one batch at a time on one thread, each batch an SQS event of 10 records in the local
broker's shape:

- processor: ``processor.handler.lambda_handler`` (records on one thread per pooled connection, 4 as
  the processor functions are deployed: dedupe claim, contact upsert, automation match, ledger rows,
  publish the send job) -> events/s over the whole run, per-batch p50/p95/p99, and the process's CPU
  time per event (``time.process_time``: every thread of this process, the database and Redis
  servers excluded). Every round of events below is processed here, so its row has them all.
- sender: ``sender.handler.lambda_handler`` (the batch's rows leased in one transaction, their limiter
  slots taken in one Redis pipeline, then records on the service's pool of 10 threads: token decrypt,
  Graph call to the sandbox; the sends settled in one transaction) on the send jobs the processor
  published,
  once with the sandbox answering at 0 ms and once, on fresh comments, at 200 ms injected latency
  -> sends/s and per-batch p50/p95/p99.

The processor has its own pool of 4 (``PROCESSOR_POOL``, its functions' ``DATABASE_POOL_SIZE``);
the sender holds a connection per concurrent send (``SEND_CONCURRENCY=10``, overflow 10), as one
Lambda instance does. Outcomes come from the ledger (``outbound_messages.status`` of the rows the run
touched): a deferral re-publishes the job with a delay to the collector and is counted, not retried.

The sandbox runs in a process of its own (``_SandboxProcess``), as Graph is not in a Lambda
instance's process: in this one, its request parsing and response writing took the GIL from the
sender's threads at the very moments the batch's calls went out and came back (about 0.45 ms of CPU
per call, 4-5 ms per batch of 10). ``BENCH_SANDBOX_IN_PROCESS=1`` runs it in this process, as this
suite did before (docs/scaling.md#the-sender), so both placements can be compared on one tree.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from bench.stats import summarize
from bench.support import (
    APP_ID,
    APP_SECRET,
    BENCH_CONTEXT,
    CollectingPublisher,
    Published,
    bench_redis,
    chunks,
    comment_webhook,
    mariadb_database,
    ms_since,
    progress,
    proxy_event,
    rate,
    sqs_event,
)
from local.extra_accounts import seed_accounts

if TYPE_CHECKING:
    from replyflow.wiring.core import Clients


BATCH = 10
# (sandbox latency, the sender), each round on fresh comments.
ROUNDS = ((0, "pool 10+10"), (200, "pool 10+10"))
PROCESSOR_POOL = 4  # template.yaml, the processor functions' DATABASE_POOL_SIZE


class _SandboxProcess:
    """The sandbox served by a child process: its URL, and what the suite asks of it (tokens issued,
    messages received) over a pipe."""

    def __init__(self) -> None:
        # spawn, not fork: suites before this one may have left threads (a fork could copy a held lock).
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve_sandbox, args=(child,), daemon=True)
        self._process.start()
        self.url: str = self._conn.recv()

    def issue_token(self, ig_user_id: str, username: str) -> str:
        self._conn.send(("issue", ig_user_id, username))
        return str(self._conn.recv())

    def sent(self) -> int:
        self._conn.send(("sent",))
        return int(self._conn.recv())

    def stop(self) -> None:
        self._conn.send(("stop",))
        self._process.join(timeout=10)


class _SandboxHere:
    """The sandbox on a thread of this process (``BENCH_SANDBOX_IN_PROCESS=1``)."""

    def __init__(self) -> None:
        from local.sandbox import SandboxServer

        self._server = SandboxServer(
            "127.0.0.1", 0, app_id=APP_ID, app_secret=APP_SECRET, faults={"latency_ms": 0}
        )
        self._server.start()
        self.url = self._server.url
        self.issue_token = self._server.issue_token

    def sent(self) -> int:
        return len(self._server.app.state.sent)

    def stop(self) -> None:
        self._server.stop()


def _serve_sandbox(conn: Any) -> None:
    from local.sandbox import SandboxServer

    server = SandboxServer("127.0.0.1", 0, app_id=APP_ID, app_secret=APP_SECRET, faults={"latency_ms": 0})
    server.start()
    conn.send(server.url)
    try:
        while (ask := conn.recv())[0] != "stop":
            conn.send(server.issue_token(ask[1], ask[2]) if ask[0] == "issue" else len(server.app.state.sent))
    finally:
        server.stop()


def _events(ig_ids: list[str], count: int, collector: CollectingPublisher, webhook: Any) -> list[Published]:
    """``count`` events-queue bodies, made by the webhook handler itself from signed comment POSTs."""
    for n in range(count):
        response = webhook(proxy_event(comment_webhook(ig_ids[n % len(ig_ids)]), APP_SECRET), BENCH_CONTEXT)
        if response["statusCode"] != 200:
            raise RuntimeError(f"the webhook refused a bench event: {response}")
    events = collector.take("events-")
    if len(events) != count:
        raise RuntimeError(f"expected {count} events-queue bodies, the webhook published {len(events)}")
    return events


def _batches(items: list[Published]) -> list[tuple[str, list[str]]]:
    """Batches of ``BATCH`` from one queue each, like an SQS event source mapping delivers them."""
    by_queue: dict[str, list[str]] = defaultdict(list)
    for item in items:
        by_queue[item.queue].append(item.body)
    return [(queue, batch) for queue, bodies in by_queue.items() for batch in chunks(bodies, BATCH)]


def _drive(handler: Any, batches: list[tuple[str, list[str]]]) -> tuple[list[float], float, int, float]:
    """Per-batch milliseconds, total seconds, records reported as failed, CPU seconds of the process."""
    samples: list[float] = []
    failed = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for queue, bodies in batches:
        t0 = time.perf_counter()
        response = handler(sqs_event(queue, bodies), BENCH_CONTEXT)
        samples.append(ms_since(t0))
        failed += len(response.get("batchItemFailures") or [])
    return samples, time.perf_counter() - started, failed, time.process_time() - cpu_started


def _ledger(clients: Clients, outbound_ids: list[int]) -> Counter[str]:
    from sqlalchemy import func, select

    from replyflow.db.engine import session_scope
    from replyflow.db.models import OutboundMessage

    with session_scope(clients.writer_sessions) as session:
        rows = session.execute(
            select(OutboundMessage.status, func.count())
            .where(OutboundMessage.id.in_(outbound_ids))
            .group_by(OutboundMessage.status)
        ).all()
    return Counter({str(status): int(n) for status, n in rows})


def _set_latency(sandbox_url: str, latency_ms: int) -> None:
    import httpx

    httpx.post(
        f"{sandbox_url}/_sandbox/faults", json={"latency_ms": latency_ms}, timeout=5
    ).raise_for_status()


def run(events: int = 1000, accounts: int = 50) -> list[dict[str, Any]]:
    from processor.handler import make_handler as processor_handler
    from replyflow.domain.messages import SendJob
    from replyflow.settings import Settings
    from replyflow.wiring.core import Clients
    from replyflow.wiring.pipeline import build_pipeline
    from sender.handler import make_handler as sender_handler
    from webhook.handler import make_handler as webhook_handler

    rows: list[dict[str, Any]] = []
    processor_samples: list[float] = []
    processor_seconds, processor_cpu, processor_events, processor_failed, sends_queued = 0.0, 0.0, 0, 0, 0
    here = os.environ.get("BENCH_SANDBOX_IN_PROCESS") == "1"
    sandbox: _SandboxProcess | _SandboxHere = _SandboxHere() if here else _SandboxProcess()
    placement = "sandbox in this process" if here else "sandbox in its own process"
    try:
        with mariadb_database("rf_bench_workers") as db_url, bench_redis() as redis_url:
            collector = CollectingPublisher()
            settings = Settings(
                environment="test",
                database_url=db_url,
                redis_url=redis_url,
                graph_api_base_url=sandbox.url,
                per_second_send_cap=100,
                instagram_app_id=APP_ID,
                instagram_app_secret=APP_SECRET,
            )
            clients = Clients(settings)
            deps = build_pipeline(settings, clients=clients, publisher=collector)
            webhook = webhook_handler(lambda: deps)
            processor_settings = settings.model_copy(update={"database_pool_size": PROCESSOR_POOL})
            processor_deps = build_pipeline(processor_settings, publisher=collector)
            processor = processor_handler(lambda: processor_deps)
            senders = {"pool 10+10": sender_handler(lambda: deps)}
            progress(f"workers: seeding the demo tenant + {accounts} accounts on MariaDB")
            ig_ids = seed_accounts(clients, sandbox.issue_token, accounts)
            where = f"MariaDB (fresh db; processor pool {PROCESSOR_POOL}), Redis {redis_url}"
            for latency_ms, pool in ROUNDS:
                _set_latency(sandbox.url, latency_ms)
                progress(f"workers: {events} comment events through the webhook handler")
                produced = _events(ig_ids, events, collector, webhook)
                progress(f"workers: processor, {events} events in batches of {BATCH}")
                samples, seconds, failed, cpu = _drive(processor, _batches(produced))
                processor_samples += samples
                processor_seconds += seconds
                processor_cpu += cpu
                processor_events += len(produced)
                processor_failed += failed
                jobs = collector.take("sends-")
                sends_queued += len(jobs)
                outbound_ids = [SendJob.from_json(job.body).outbound_id for job in jobs]
                sent_before = sandbox.sent()
                progress(f"workers: sender ({pool}), {len(jobs)} sends at sandbox latency {latency_ms} ms")
                samples, seconds, failed, _cpu = _drive(senders[pool], _batches(jobs))
                republished = collector.take("sends-")
                ledger = _ledger(clients, outbound_ids)
                rows.append(
                    summarize(
                        f"sender, batch of {BATCH}, sandbox {latency_ms} ms, {pool}, {placement}",
                        samples,
                        per_second=rate(len(jobs), seconds),
                        unit="per batch; per_second = sends/s",
                        sends=len(jobs),
                        ledger=dict(sorted(ledger.items())),
                        deferred_republished=len(republished),
                        batch_failures=failed,
                        sandbox_received=sandbox.sent() - sent_before,
                        sandbox_latency_ms=latency_ms,
                        backing=where,
                    )
                )
            rows.insert(
                0,
                summarize(
                    f"processor, batch of {BATCH}",
                    processor_samples,
                    per_second=rate(processor_events, processor_seconds),
                    unit="per batch; per_second = events/s",
                    events=processor_events,
                    cpu_ms_per_event=round(processor_cpu * 1000 / max(processor_events, 1), 2),
                    sends_queued=sends_queued,
                    batch_failures=processor_failed,
                    accounts=len(ig_ids),
                    backing=where,
                ),
            )
    finally:
        sandbox.stop()
    return rows
