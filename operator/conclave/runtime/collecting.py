"""How the operator's process uses Python's cyclic garbage collector.

The cache holds every watched object: at 10,000 singletons, millions of dicts, lists and
models, nearly none of them in a cycle (reference counting frees them). A full
collection walks all of them while the event loop stands still: measured at 10,000
singletons (on a busy two-core machine), dozens of pauses of up to 1.9 s while the
singletons were placed, each one a stall of every watch, probe and write. So the
collector is kept to what is young: every ``FREEZE_SECONDS`` what has survived so far is
moved out of its reach (``gc.freeze``), and young objects are collected as usual. An
object the freeze kept that later becomes part of a garbage cycle (a finished task caught
in one, say) would never be freed, so every ``FULL_SECONDS`` the frozen objects are handed
back and the whole heap is collected: one pause at a known pace instead of many. Each
pause is in ``conclave_gc_pause_seconds``.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from conclave.adapters import metrics

FREEZE_SECONDS = 30.0
FULL_SECONDS = 3600.0


_started = [0.0]
"""When the running collection began (the collector is one per process, and so is this)."""


def _pause(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        seconds = time.perf_counter() - _started[0]
        metrics.GC_PAUSE_SECONDS.labels(generation=str(info["generation"])).observe(seconds)


def measure() -> None:
    """Time every collection into ``conclave_gc_pause_seconds`` (once per process)."""
    if _pause not in gc.callbacks:
        gc.callbacks.append(_pause)


async def tend(freeze_seconds: float = FREEZE_SECONDS, full_seconds: float = FULL_SECONDS) -> None:
    """Freeze what has survived every ``freeze_seconds``; hand it back and collect the
    whole heap every ``full_seconds``. Runs until cancelled."""
    last_full = time.monotonic()
    while True:
        await asyncio.sleep(freeze_seconds)
        if time.monotonic() - last_full >= full_seconds:
            gc.unfreeze()
            gc.collect()
            last_full = time.monotonic()
        gc.freeze()
        metrics.GC_FROZEN.set(gc.get_freeze_count())
