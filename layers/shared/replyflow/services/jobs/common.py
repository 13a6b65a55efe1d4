"""What every job shares: its result, its deadline and how a result is reported.

A job stops early (``stopped_early``) when its deadline is near rather than being killed mid-chunk;
every job can resume, so the next run picks up what is left.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from replyflow.ports import MetricsSink


class Deadline:
    """Time left for this run (the Lambda's remaining time minus a safety margin)."""

    def __init__(self, seconds: float | None, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._end = None if seconds is None else monotonic() + seconds

    @classmethod
    def unlimited(cls) -> Deadline:
        return cls(None)

    def remaining(self) -> float:
        return float("inf") if self._end is None else self._end - self._monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


def delete_in_chunks(deadline: Deadline, chunk_size: int, chunk: Callable[[], int]) -> bool:
    """Run ``chunk`` (one short transaction that deletes one chunk and returns how many rows it read
    to choose it) until a chunk reads fewer than ``chunk_size`` rows: True then, False when the
    deadline stopped it first (it is checked before every chunk). Deleting is by predicate, so the
    next run resumes where this one stopped."""
    while not deadline.expired():
        if chunk() < chunk_size:
            return True
    return False


@dataclass
class JobResult:
    job: str
    counts: Counter[str] = field(default_factory=Counter)
    details: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    duration_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "ok": True,
            "duration_seconds": round(self.duration_seconds, 3),
            "stopped_early": self.stopped_early,
            "counts": dict(sorted(self.counts.items())),
            **self.details,
        }


def summary_line(result: JobResult) -> str:
    counts = " ".join(f"{k}={v}" for k, v in sorted(result.counts.items())) or "nothing to do"
    early = " (stopped early, resumes next run)" if result.stopped_early else ""
    return f"job {result.job} done in {result.duration_seconds:.2f}s: {counts}{early}"


def emit_metrics(result: JobResult, sink: MetricsSink) -> None:
    """Counts as metrics with the job as the only dimension (tenant ids never become dimensions)."""
    dims: Mapping[str, str] = {"job": result.job}
    sink.record("JobDuration", result.duration_seconds * 1000, "Milliseconds", dims)
    sink.record("JobStoppedEarly", 1 if result.stopped_early else 0, "Count", dims)
    for name, value in sorted(result.counts.items()):
        sink.record(_metric_name(name), value, "Count", dims)


def _metric_name(count: str) -> str:
    return "".join(part.capitalize() for part in count.split("_"))
