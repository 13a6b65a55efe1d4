"""Percentiles and reporting shared by every benchmark: one row per measurement (``summarize``: n,
p50/p95/p99/max in ms, plus the suite's own fields such as ``per_second`` from the same run), a table
per suite on stdout, and JSON under ``bench/results/`` with the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MACHINE_NOTE = (
    f"{os.cpu_count()} CPU cores, shared with other work (other engineers' tests and builds may run at the"
    " same time): figures are indicative, compare runs on the same machine only"
)


def percentile(samples: Sequence[float], pct: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(name: str, samples_ms: Sequence[float], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "n": len(samples_ms),
        "p50_ms": round(statistics.median(samples_ms), 3) if samples_ms else None,
        "p95_ms": round(percentile(samples_ms, 95), 3) if samples_ms else None,
        "p99_ms": round(percentile(samples_ms, 99), 3) if samples_ms else None,
        "max_ms": round(max(samples_ms), 3) if samples_ms else None,
        **extra,
    }


MAIN_COLUMNS = ("name", "n", "p50_ms", "p95_ms", "p99_ms", "max_ms", "per_second")


def print_table(rows: list[dict[str, Any]], stream: TextIO | None = None) -> None:
    """The percentile columns, then the other fields: those equal in every row once under the table,
    the rest per row in a ``details`` column."""
    out = stream or sys.stdout
    if not rows:
        print("  (no rows)", file=out)
        return
    extra = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in MAIN_COLUMNS]
    common = _common_fields(rows, extra)
    table = [
        {
            **{c: _fmt(row.get(c)) for c in MAIN_COLUMNS},
            "details": "; ".join(f"{k}={_fmt(row[k])}" for k in extra if k in row and k not in common),
        }
        for row in rows
    ]
    columns = [*MAIN_COLUMNS, "details"]
    widths = {c: max(len(c), *(len(r[c]) for r in table)) for c in columns}
    for cells in [{c: c for c in columns}, *table]:
        print("  ".join(cells[c].ljust(widths[c]) for c in columns).rstrip(), file=out)
    for k in common:
        print(f"  {k}: {_fmt(rows[0][k])}", file=out)


def _common_fields(rows: list[dict[str, Any]], fields: list[str]) -> list[str]:
    """The fields every row has with one value (said once under a table of several rows)."""
    if len(rows) < 2:
        return []
    return [k for k in fields if all(k in row and row[k] == rows[0][k] for row in rows)]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count() or 0,
        "platform": platform.platform(),
        "load_average_1m": round(load[0], 2),
        "note": MACHINE_NOTE,
    }


def write_results(suite: str, rows: list[dict[str, Any]], **meta: Any) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{suite}.json"
    payload = {
        "suite": suite,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **meta,
        "results": rows,
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path
