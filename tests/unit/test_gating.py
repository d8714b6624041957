"""kopf's readiness gate with conclave's linear wake-ups decides as kopf's own did."""

from __future__ import annotations

import asyncio

from kopf._cogs.aiokits import aiotoggles

from conclave.handlers import gating


async def settled() -> None:
    for _ in range(5):  # let every woken waiter run its check
        await asyncio.sleep(0)


async def test_the_gate_opens_when_its_last_toggle_is_dropped_and_not_before() -> None:
    assert gating.install()
    gate = aiotoggles.ToggleSet(all)
    first, second = await gate.make_toggle(name="a"), await gate.make_toggle(name="b")
    opened = asyncio.create_task(gate.wait_for(True))
    await gate.drop_toggle(first)
    await settled()
    assert not opened.done()
    await gate.drop_toggle(second)
    await asyncio.wait_for(opened, 1)
    assert gate.is_on()


async def test_dropping_many_toggles_at_once_opens_the_gate() -> None:
    assert gating.install()
    gate = aiotoggles.ToggleSet(all)
    toggles = [await gate.make_toggle(name=str(i)) for i in range(3)]
    opened = asyncio.create_task(gate.wait_for(True))
    await gate.drop_toggles(toggles[:2])
    await settled()
    assert not opened.done()
    await gate.drop_toggles(toggles[2:])
    await asyncio.wait_for(opened, 1)


async def test_a_toggle_added_to_an_open_gate_closes_it_for_those_waiting_for_that() -> None:
    assert gating.install()
    gate = aiotoggles.ToggleSet(all)
    closed = asyncio.create_task(gate.wait_for(False))
    await settled()
    assert not closed.done()
    await gate.make_toggle(name="late")
    await asyncio.wait_for(closed, 1)
    assert gate.is_off()


async def test_a_set_of_any_toggles_turns_off_when_its_only_on_toggle_is_dropped() -> None:
    assert gating.install()
    paused = aiotoggles.ToggleSet(any)
    on = await paused.make_toggle(True, name="peer")
    off = asyncio.create_task(paused.wait_for(False))
    await settled()
    assert not off.done()
    await paused.drop_toggle(on)
    await asyncio.wait_for(off, 1)
