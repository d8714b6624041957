"""Supervisors: bursts coalesce, failures back off and retry, finished ones go away."""

from __future__ import annotations

import asyncio
import logging

import pytest

from conclave.core.keys import Key
from conclave.errors import ApiError
from conclave.runtime.supervising import Outcome, Supervisors

KEY = Key("prod", "chat")


async def test_a_burst_of_wakes_is_one_iteration() -> None:
    seen: list[Key] = []
    done = asyncio.Event()

    async def reconcile(key: Key) -> Outcome:
        seen.append(key)
        done.set()
        return Outcome()

    supervisors = Supervisors(reconcile)
    for _ in range(50):
        supervisors.wake(KEY)
    await asyncio.wait_for(done.wait(), 1)
    await asyncio.sleep(0.1)
    assert seen == [KEY]
    await supervisors.stop()


async def test_a_failing_iteration_is_retried_and_the_supervisor_survives() -> None:
    results: list[str] = []
    recovered = asyncio.Event()

    async def reconcile(key: Key) -> Outcome:
        if len(results) < 2:
            results.append("failed")
            raise RuntimeError("the API was down")
        results.append("succeeded")
        recovered.set()
        return Outcome()

    supervisors = Supervisors(reconcile, initial_backoff=0.01)
    supervisors.wake(KEY)
    await asyncio.wait_for(recovered.wait(), 2)
    assert results == ["failed", "failed", "succeeded"]
    assert supervisors.keys() == [KEY]
    await supervisors.stop()


async def test_a_supervisor_with_nothing_left_to_look_after_ends() -> None:
    async def reconcile(key: Key) -> Outcome:
        return Outcome(finished=True)

    supervisors = Supervisors(reconcile)
    supervisors.wake(KEY)
    for _ in range(100):
        if not supervisors.keys():
            break
        await asyncio.sleep(0.01)
    assert supervisors.keys() == []


async def test_requeue_after_looks_again_without_an_event() -> None:
    iterations: list[float] = []
    twice = asyncio.Event()

    async def reconcile(key: Key) -> Outcome:
        iterations.append(asyncio.get_running_loop().time())
        if len(iterations) == 2:
            twice.set()
        return Outcome(requeue_after=0.05)

    supervisors = Supervisors(reconcile)
    supervisors.wake(KEY)
    await asyncio.wait_for(twice.wait(), 1)
    assert iterations[1] - iterations[0] >= 0.05
    await supervisors.stop()


async def test_an_api_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "conclave")
    attempts: list[int] = []
    recovered = asyncio.Event()

    async def reconcile(key: Key) -> Outcome:
        attempts.append(1)
        if len(attempts) <= 5:
            raise ApiError(0, "Unreachable", "GET pods: Connection refused")
        recovered.set()
        return Outcome()

    supervisors = Supervisors(reconcile, initial_backoff=0.01, max_backoff=0.02)
    supervisors.wake(KEY)
    await asyncio.wait_for(recovered.wait(), 2)
    await supervisors.stop()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        (
            "WARNING",
            "Failed to reconcile topology prod/chat: GET pods: Connection refused; retrying with backoff",
        ),
        ("INFO", lines[1][1]),
    ]
    assert lines[1][1].startswith("Managed to reconcile topology prod/chat again after")
    assert lines[1][1].endswith("and 5 failed attempts")
    assert all(r.exc_info is None for r in caplog.records), "an outage is not a bug: no traceback"


async def test_an_iteration_that_runs_far_too_long_shows_as_wedged() -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def reconcile(key: Key) -> Outcome:
        started.set()
        await release.wait()  # a request that never answers
        return Outcome()

    supervisors = Supervisors(reconcile, wedged_after=0.05)
    supervisors.wake(KEY)
    await asyncio.wait_for(started.wait(), 1)
    assert supervisors.wedged() == []
    await asyncio.sleep(0.1)
    [wedged] = supervisors.wedged()
    assert wedged.startswith("supervisor prod/chat has been in one iteration for ")
    release.set()
    await asyncio.sleep(0.05)
    assert supervisors.wedged() == []
    await supervisors.stop()
