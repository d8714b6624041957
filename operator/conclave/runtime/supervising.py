"""One supervisor task per topology name: woken by handlers, it coalesces bursts and runs
observe → plan → apply until nothing is left to look after.

A supervisor keys on (namespace, topology name), not on the ClusterTopology object, so
ProcessGroups and Singletons that name a topology which does not exist yet are looked
after too (they get TopologyNotFound) and are picked up the moment it appears. Handlers
only call ``wake``; the work happens here, one iteration at a time per key. A failing
iteration is counted and retried with backoff; the supervisor never dies of it. An API
error is logged once per streak of failures, without a traceback (the API server
restarting is not a bug); anything else is logged with its traceback each time.
``wedged`` names the keys whose iteration has run far longer than any should, for the
liveness probe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from conclave.adapters import metrics
from conclave.core.keys import Key
from conclave.errors import ApiError, ConflictError, LeadershipLost, transient
from conclave.runtime import outages

logger = logging.getLogger(__name__)

COALESCE_SECONDS = 0.02
"""Long enough to gather a burst of watch events into one iteration, short enough not to show."""
WEDGED_AFTER_SECONDS = 300.0
"""An iteration is bounded by its probes' and requests' timeouts (a minute at most, each in
parallel) and, in an outage, by the renew deadline; one running this long is stuck."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What an iteration asks of its supervisor: to look again later, or to end."""

    requeue_after: float | None = None
    finished: bool = False
    """Nothing refers to this key any more (the topology and all its dependents are gone)."""


Reconcile = Callable[[Key], Awaitable[Outcome]]


class Supervisors:
    """The supervisor tasks, created on first wake and removed when they finish."""

    def __init__(
        self,
        reconcile: Reconcile,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        on_fatal: Callable[[BaseException], None] | None = None,
        wedged_after: float = WEDGED_AFTER_SECONDS,
    ) -> None:
        self._reconcile = reconcile
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._on_fatal = on_fatal
        self._wakes: dict[Key, asyncio.Event] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._iterating: dict[Key, float] = {}
        """When each key's running iteration started (monotonic)."""
        self.wedged_after = wedged_after

    def wake(self, key: Key) -> None:
        """Ask the key's supervisor to look again soon; start it if it is not running."""
        if key not in self._tasks:
            self._wakes[key] = asyncio.Event()
            self._tasks[key] = asyncio.create_task(self._supervise(key), name=f"supervisor {key}")
            metrics.SUPERVISORS.set(len(self._tasks))
        self._wakes[key].set()

    def keys(self) -> list[Key]:
        return sorted(self._tasks)

    def wedged(self) -> list[str]:
        """What is wrong if some iteration has run longer than ``wedged_after``, else nothing:
        one line per such key, for /healthz."""
        now = time.monotonic()
        return [
            f"supervisor {key} has been in one iteration for {now - started:.0f}s"
            for key, started in sorted(self._iterating.items())
            if now - started > self.wedged_after
        ]

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _supervise(self, key: Key) -> None:
        wake = self._wakes[key]
        outage = outages.Outage(logger, f"reconcile topology {key}")
        backoff = self._initial_backoff
        try:
            while True:
                await wake.wait()
                await asyncio.sleep(COALESCE_SECONDS)
                wake.clear()
                try:
                    outcome = await self._iterate(key, outage)
                except LeadershipLost as error:
                    if self._on_fatal is not None:
                        self._on_fatal(error)
                    return
                if outcome is None:  # failed: look again after a backoff
                    self._wake_later(key, backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                backoff = self._initial_backoff
                if outcome.finished and not wake.is_set():
                    return
                if outcome.requeue_after is not None:
                    self._wake_later(key, outcome.requeue_after)
        finally:
            self._tasks.pop(key, None)
            self._wakes.pop(key, None)
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()
            metrics.SUPERVISORS.set(len(self._tasks))

    async def _iterate(self, key: Key, outage: outages.Outage) -> Outcome | None:
        """One iteration; None when it failed. Raises LeadershipLost."""
        started = time.monotonic()
        self._iterating[key] = started
        try:
            outcome = await self._reconcile(key)
        except ConflictError as error:
            metrics.RECONCILE_TOTAL.labels(controller="topology", result="conflict").inc()
            logger.info("Re-read %s after a conflict: %s", key, error)
            self._wakes[key].set()  # decide again on the fresh read, at once
            return Outcome()
        except ApiError as error:  # an outage, or a refusal: no traceback to show
            metrics.RECONCILE_TOTAL.labels(controller="topology", result="error").inc()
            outage.failed(error, logging.WARNING if transient(error) else logging.ERROR)
            return None
        except LeadershipLost:
            raise
        except Exception:
            metrics.RECONCILE_TOTAL.labels(controller="topology", result="error").inc()
            logger.exception("Reconciling topology %s failed; retrying with backoff", key)
            return None
        finally:
            self._iterating.pop(key, None)
        metrics.RECONCILE_TOTAL.labels(controller="topology", result="success").inc()
        metrics.RECONCILE_SECONDS.labels(controller="topology").observe(time.monotonic() - started)
        outage.recovered()
        return outcome

    def _wake_later(self, key: Key, delay: float) -> None:
        """One pending timer per key: a newer request replaces the older one."""
        previous = self._timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._wakes[key].set)
