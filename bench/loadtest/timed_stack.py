"""``python -m bench.loadtest.timed_stack ARGS``: ``python -m local ARGS`` with every SQL statement timed.

SQLAlchemy's ``before_cursor_execute``/``after_cursor_execute`` events on the ``Engine`` class (so every
engine the stack builds, writer and reader) record each statement's wall time, from the driver call to
its return, with the moment it ended. A thread appends them once a second to ``LOADTEST_QUERY_LOG``
as ``<epoch seconds> <ms>`` lines; the runner cuts them by scenario window. Nothing of the stack itself
changes.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from typing import Any


def install(path: str) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    pending: list[tuple[float, float]] = []
    lock = threading.Lock()

    def before(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
        context._loadtest_started = time.perf_counter()

    def after(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
        started = getattr(context, "_loadtest_started", None)
        if started is not None:
            ms = (time.perf_counter() - started) * 1000
            with lock:
                pending.append((time.time(), ms))

    def flush() -> None:
        with lock:
            taken = pending[:]
            pending.clear()
        if taken:
            with open(path, "a") as out:
                out.writelines(f"{at:.3f} {ms:.3f}\n" for at, ms in taken)

    def loop() -> None:
        while True:
            time.sleep(1.0)
            flush()

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    threading.Thread(target=loop, name="loadtest-query-log", daemon=True).start()
    atexit.register(flush)


def main() -> None:
    import sys

    from local.cli import main as local_main

    path = os.environ.get("LOADTEST_QUERY_LOG")
    if path:
        install(path)
    local_main(sys.argv[1:])


if __name__ == "__main__":
    main()
