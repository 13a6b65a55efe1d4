"""The cyclic garbage collector paused over a new instance's imports and first invocation.

A new instance's imports and first event allocate hundreds of thousands of objects that live as
long as the instance (modules, classes, SQLAlchemy's mappers and compiled statements): nearly none
is garbage, yet every allocation threshold crossed starts a collection, and the oldest generation's
collections walk the whole heap built so far. Paused over that phase, a new sender instance serves
its first jobs about a tenth sooner in CPU time, an API instance its first request a few hundredths
sooner (docs/scaling.md#cold-starts). The collector is
resumed right after, so whatever cycles the phase left are collected at the next collection; a
collector already paused by someone else stays paused. Reference counting frees everything that is
not a cycle either way.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection inside the block (when there was one before it)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def first_call_paused(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` with the collector paused over its first call (the instance's first invocation: its
    lazy imports, engine, mapper configuration and first statements); later calls run as they are."""
    lock = threading.Lock()
    first = [True]

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with lock:
            pause, first[0] = first[0], False
        if not pause:
            return fn(*args, **kwargs)
        with collector_paused():
            return fn(*args, **kwargs)

    return wrapper
