"""The local broker alone, in memory and on its SQLite state file (``local/queue_store.py``).

One queue with the template's shape (visibility 180 s, DLQ after 5 receives) and one consumer of 4
worker threads taking batches of 10 with a 50 ms batching window, invoking a handler that does
nothing; every message is sent with ``send`` (the webhook's ``SendMessage``) from 4 threads:

- send: ``messages`` sends (4 threads) -> sends/s and the per-send p50/p95/p99 (each durable send
  has committed its row when it returns);
- burst: the same messages drained end to end, from the first send to the last delete -> messages/s
  (what the local stack's pipeline can get from its queues at most).

Durable runs use a fresh file in a temporary directory (WAL, ``synchronous=NORMAL``).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.stats import summarize
from bench.support import ms_since, progress, rate

THREADS = 4


def _measure(name: str, messages: int, path: Path | None) -> list[dict[str, Any]]:
    from local.broker import Broker, Consumer
    from local.queue_store import QueueStore
    from local.template import QueueSpec

    done = threading.Event()
    handled = [0]
    lock = threading.Lock()

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        with lock:
            handled[0] += len(event["Records"])
            if handled[0] >= messages:
                done.set()
        return {"batchItemFailures": []}

    queues = [
        QueueSpec("WorkQueue", "work", 180, 0, "work-dlq", 5),
        QueueSpec("WorkDlq", "work-dlq", 180, 0, None, None),
    ]
    consumer = Consumer("work", "WorkFunction", handler, batch_size=10, workers=4)
    store = QueueStore(path) if path is not None else None
    broker = Broker(queues, [consumer], store=store)
    broker.start()
    samples: list[float] = []

    def send(count: int) -> None:
        mine: list[float] = []
        for index in range(count):
            began = time.perf_counter()
            broker.send("work", f'{{"n": {index}, "pad": "{"x" * 200}"}}', delay_seconds=0)
            mine.append(ms_since(began))
        with lock:
            samples.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=send, args=(messages // THREADS,)) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent_s = time.perf_counter() - started
    done.wait(120)
    drained_s = time.perf_counter() - started
    broker.stop()
    broker.close()
    total = THREADS * (messages // THREADS)
    progress(f"{name}: {total} sent in {sent_s:.2f} s, drained in {drained_s:.2f} s")
    return [
        summarize(f"broker send, {name}", samples, per_second=rate(total, sent_s)),
        {"name": f"broker burst, {name}", "n": handled[0], "per_second": rate(handled[0], drained_s)},
    ]


def run(messages: int = 20_000) -> list[dict[str, Any]]:
    rows = _measure("in memory", messages, None)
    with tempfile.TemporaryDirectory(prefix="rf-bench-broker-") as tmp:
        rows += _measure("durable (SQLite WAL)", messages, Path(tmp) / "broker.sqlite3")
    return rows
