"""kopf's readiness gate, made linear in the number of objects.

kopf holds back every handler until each indexed kind's initial listing is indexed: one
toggle per listed object in one ``ToggleSet``, and every object's worker, once indexed,
waits on that set's condition. kopf wakes every waiter whenever a toggle is added or
dropped, whether or not the set's state changed, so a start over n existing objects
costs n² wake-ups: over 10,000 singletons and their Leases, a restarted operator spent
minutes of CPU in them and never reached its first iteration.

``install`` makes the set's ``make_toggle``, ``drop_toggle`` and ``drop_toggles`` wake
the waiters only when the set's state (on or off) changes: a waiter waits for a state,
so a change that leaves it as it was cannot concern one. It must never change what the
gate decides, only how often it is asked; it leaves kopf as it is when kopf's ToggleSet
lacks the parts it replaces (written against kopf 1.45).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from kopf._cogs.aiokits import aiotoggles

logger = logging.getLogger(__name__)

_ORIGINAL = {
    name: getattr(aiotoggles.ToggleSet, name, None) for name in ("make_toggle", "drop_toggle", "drop_toggles")
}


async def _make_toggle(self: Any, __val: bool = False, *, name: str | None = None) -> aiotoggles.Toggle:
    toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            self._condition.notify_all()
    return toggle


async def _drop_toggle(self: Any, toggle: aiotoggles.Toggle) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.discard(toggle)
        if self.is_on() != before:
            self._condition.notify_all()


async def _drop_toggles(self: Any, toggles: Iterable[aiotoggles.Toggle]) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.difference_update(toggles)
        if self.is_on() != before:
            self._condition.notify_all()


def install() -> bool:
    """Make kopf's toggle sets wake their waiters only on a change of state (idempotent).
    False, with a warning, when kopf's ToggleSet is not the one this was written for."""
    probe = aiotoggles.ToggleSet(all)
    known = all(_ORIGINAL.values()) and hasattr(probe, "_condition") and isinstance(probe._toggles, set)
    if not known:
        logger.warning("Left kopf's readiness gate as it is: its ToggleSet is not the one conclave knows")
        return False
    aiotoggles.ToggleSet.make_toggle = _make_toggle  # type: ignore[method-assign]
    aiotoggles.ToggleSet.drop_toggle = _drop_toggle  # type: ignore[method-assign]
    aiotoggles.ToggleSet.drop_toggles = _drop_toggles  # type: ignore[method-assign]
    return True
