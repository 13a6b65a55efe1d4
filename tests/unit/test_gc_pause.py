"""The collector is paused over a block and over a function's first call only, and resumed after,
even when the block raises; a collector paused by someone else stays paused (replyflow/gc_pause.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from replyflow.gc_pause import collector_paused, first_call_paused


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    (gc.enable if enabled else gc.disable)()


def test_the_collector_is_paused_in_the_block_and_resumed_after_it_even_on_an_error() -> None:
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError
    assert gc.isenabled()


def test_a_collector_paused_by_someone_else_stays_paused() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_only_the_first_call_runs_with_the_collector_paused() -> None:
    gc.enable()
    seen: list[bool] = []

    def served(n: int) -> int:
        seen.append(gc.isenabled())
        return n + 1

    handler = first_call_paused(served)
    assert (handler(1), handler(2), handler(3)) == (2, 3, 4)
    assert seen == [False, True, True]
    assert gc.isenabled()


def test_with_freeze_what_the_block_built_is_kept_out_of_later_collections() -> None:
    gc.enable()
    before = gc.get_freeze_count()
    try:
        with collector_paused():
            kept = [[n] for n in range(1000)]
        assert gc.get_freeze_count() == before  # not frozen without ``freeze``
        with collector_paused(freeze=True):
            kept += [[n] for n in range(1000)]
        assert gc.get_freeze_count() >= before + 2000
        assert gc.isenabled()
    finally:
        gc.unfreeze()


def test_a_first_call_frozen_after_it_freezes_once() -> None:
    gc.enable()
    try:
        handler = first_call_paused(lambda: gc.get_freeze_count(), freeze=True)
        during = handler()
        after = gc.get_freeze_count()
        assert after > during
        handler()
        assert gc.get_freeze_count() == after  # later calls run as they are
    finally:
        gc.unfreeze()
