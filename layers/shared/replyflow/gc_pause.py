"""The cyclic garbage collector paused over a new instance's imports and first invocation.

A new instance's imports and first event allocate hundreds of thousands of objects that live as
long as the instance (modules, classes, SQLAlchemy's mappers and compiled statements): nearly none
is garbage, yet every allocation threshold crossed starts a collection, and the oldest generation's
collections walk the whole heap built so far. Paused over that phase, a new sender instance serves
its first jobs about a tenth sooner in CPU time, an API instance its first request a few hundredths
sooner (docs/scaling.md#cold-starts). The collector is resumed right after; a collector already
paused by someone else stays paused. Reference counting frees everything that is not a cycle either
way.

With ``freeze``, what the phase built is moved to the permanent generation (``gc.freeze``) before the
collector resumes: no later collection walks it again. Resumed without it, the first allocation
after the phase starts a collection of the oldest generation over the whole heap, about 10 ms for an
API instance and 50 ms for a sender's before their first answer, and every full collection of the
instance's life walks those objects again. A cycle the phase left as garbage is then never
collected: a bounded, one-time cost of an instance. Lambda's entry points freeze (imports, first
invocation); the local stack and the tests, which build many handlers in one process, do not.
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
def collector_paused(*, freeze: bool = False) -> Iterator[None]:
    """No automatic collection inside the block (when there was one before it); with ``freeze``,
    every object then tracked is kept out of later collections."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        gc.enable()


def first_call_paused(fn: Callable[_P, _R], *, freeze: bool = False) -> Callable[_P, _R]:
    """``fn`` with the collector paused over its first call (the instance's first invocation: its
    lazy imports, engine, mapper configuration and first statements), frozen after it with
    ``freeze``; later calls run as they are."""
    lock = threading.Lock()
    first = [True]

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with lock:
            pause, first[0] = first[0], False
        if not pause:
            return fn(*args, **kwargs)
        with collector_paused(freeze=freeze):
            return fn(*args, **kwargs)

    return wrapper
