"""The operator keeps the garbage collector to young objects, and times every collection."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from conclave.adapters import metrics
from conclave.runtime import collecting


class Node:
    """Something a cycle can be made of, and a weak reference can watch."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def collector_held() -> Iterator[None]:
    """No automatic collection during the test (the counts below are exact); all thawed after."""
    gc.disable()
    yield
    gc.unfreeze()
    gc.enable()


def full_collections() -> float:
    sample = metrics.REGISTRY.get_sample_value("conclave_gc_pause_seconds_count", {"generation": "2"})
    return sample or 0.0


async def test_what_survives_is_frozen_and_garbage_among_it_is_freed_at_the_full_pace() -> None:
    collecting.measure()
    collecting.measure()  # once per process, however often asked
    survivors = [Node() for _ in range(1000)]
    tending = asyncio.create_task(collecting.tend(freeze_seconds=0.01, full_seconds=3600))
    while gc.get_freeze_count() < len(survivors):
        await asyncio.sleep(0.01)
    tending.cancel()

    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.freeze()  # the cycle is out of the collector's reach
    watch = weakref.ref(a)
    del a, b
    gc.collect()
    assert watch() is not None  # frozen: an ordinary collection does not free it
    before, collected = full_collections(), gc.get_stats()[2]["collections"]
    full = asyncio.create_task(collecting.tend(freeze_seconds=0.01, full_seconds=0))
    while watch() is not None:
        await asyncio.sleep(0.01)
    full.cancel()
    ran = gc.get_stats()[2]["collections"] - collected
    assert ran >= 1
    assert full_collections() == before + ran  # each full collection timed, and once
