"""Cold-start import cost of each function: a fresh interpreter importing the handler module, minus a
bare interpreter, repeated; this is what every new Lambda instance pays before its first event."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from bench.stats import summarize

HANDLERS = {
    "webhook": "webhook.handler",
    "authorizer": "authorizer.handler",
    "processor": "processor.handler",
    "sender": "sender.handler",
    "api": "api.handler",
    "jobs": "jobs.handler",
}


def _time(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return (time.perf_counter() - start) * 1000


def run(repeats: int = 7) -> list[dict[str, Any]]:
    bare = sorted(_time("pass") for _ in range(repeats))[repeats // 2]
    rows = []
    for name, module in HANDLERS.items():
        try:
            samples = [_time(f"import {module}") - bare for _ in range(repeats)]
        except subprocess.CalledProcessError:
            continue
        rows.append(summarize(f"cold import {name}", samples, bare_python_ms=round(bare, 1)))
    return rows
