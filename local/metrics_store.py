"""Metrics published on the local stack, kept in memory and served at ``GET /_local/metrics``.

In AWS the jobs put metrics to CloudWatch (EMF); locally they call :func:`record` instead and a person
or a test reads them back. Points are aggregated per (name, dimensions): count, sum, min, max, last.
Thread-safe; process-wide, like CloudWatch is account-wide.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_lock = threading.Lock()


@dataclass
class _Series:
    name: str
    unit: str
    dimensions: dict[str, str]
    count: int = 0
    total: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")
    last: float = 0.0
    last_at: float = 0.0


_series: dict[tuple[str, tuple[tuple[str, str], ...]], _Series] = {}


def record(name: str, value: float, unit: str = "Count", dimensions: Mapping[str, str] | None = None) -> None:
    dims = {str(k): str(v) for k, v in (dimensions or {}).items()}
    key = (name, tuple(sorted(dims.items())))
    with _lock:
        series = _series.get(key)
        if series is None:
            series = _series[key] = _Series(name, unit, dims)
        series.count += 1
        series.total += value
        series.minimum = min(series.minimum, value)
        series.maximum = max(series.maximum, value)
        series.last = value
        series.last_at = time.time()


def snapshot() -> list[dict[str, Any]]:
    with _lock:
        return [
            {
                "name": s.name,
                "unit": s.unit,
                "dimensions": dict(s.dimensions),
                "count": s.count,
                "sum": s.total,
                "min": s.minimum,
                "max": s.maximum,
                "last": s.last,
                "last_at": s.last_at,
            }
            for s in sorted(_series.values(), key=lambda s: (s.name, sorted(s.dimensions.items())))
        ]


def clear() -> None:
    with _lock:
        _series.clear()
