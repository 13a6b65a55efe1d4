"""SQS partial batch responses for the pipeline's workers (``ReportBatchItemFailures``).

Records run concurrently on a thread pool (each call opens its own database session); a record that
raises is reported by its ``messageId`` and only it is redelivered, never the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from replyflow.observability import clear_tenant, logger


def process_batch(
    event: dict[str, Any], handle: Callable[[str], object], *, max_workers: int = 10
) -> dict[str, list[dict[str, str]]]:
    records = event.get("Records") or []
    if not records:
        return {"batchItemFailures": []}

    def run(record: dict[str, Any]) -> str | None:
        message_id = str(record.get("messageId", ""))
        clear_tenant()
        try:
            handle(record.get("body") or "")
        except Exception:
            receives = (record.get("attributes") or {}).get("ApproximateReceiveCount")
            logger.exception("record failed", extra={"message_id": message_id, "receive_count": receives})
            return message_id
        return None

    if len(records) == 1:
        failures = [run(records[0])]
    else:
        with ThreadPoolExecutor(max_workers=min(max_workers, len(records))) as pool:
            failures = list(pool.map(run, records))
    return {"batchItemFailures": [{"itemIdentifier": f} for f in failures if f is not None]}
