"""One supervisor iteration: observe (from the cache) → plan (pure) → apply.

Nothing is remembered between iterations except the previous iteration's write
failures, which the next plan turns into a condition: every decision is recomputed from
what the API shows, so a restart or a missed event loses nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from conclave.adapters.applying import Applier
from conclave.api import ClusterTopology, ProcessGroup, Singleton
from conclave.cache import Cache
from conclave.core import planning
from conclave.core.observations import Observation, Observed, Resource
from conclave.handlers.watching import PROCESS_GROUP, SINGLETON, TOPOLOGY
from conclave.supervising import Key, Outcome

FAILURE_RETRY_SECONDS = 5.0


def observed(model: type[Resource], body: dict[str, Any]) -> Observed[Resource]:
    metadata = body["metadata"]
    return Observed(
        resource=model.from_api(body),
        uid=metadata["uid"],
        generation=int(metadata.get("generation", 0)),
        resource_version=metadata["resourceVersion"],
        wire_status=body.get("status") or {},
    )


class Reconciler:
    def __init__(
        self, cache: Cache, applier: Applier, clock: Callable[[], float], resync_seconds: float
    ) -> None:
        self.cache = cache
        self.applier = applier
        self.clock = clock
        self.resync_seconds = resync_seconds
        self._failures: dict[Key, tuple[str, ...]] = {}

    def observe(self, key: Key) -> Observation:
        topology = self.cache.get(TOPOLOGY, key.namespace, key.topology)

        def dependents(kind: str, model: type[Resource]) -> tuple[Observed[Resource], ...]:
            return tuple(
                observed(model, body)
                for body in self.cache.in_namespace(kind, key.namespace)
                if body.get("spec", {}).get("topology") == key.topology
            )

        now = datetime.datetime.fromtimestamp(int(self.clock()), datetime.UTC)
        return Observation(
            now=now,
            namespace=key.namespace,
            topology_name=key.topology,
            topology=observed(ClusterTopology, topology) if topology else None,
            process_groups=dependents(PROCESS_GROUP, ProcessGroup),
            singletons=dependents(SINGLETON, Singleton),
            write_failures=self._failures.get(key, ()),
        )

    async def __call__(self, key: Key) -> Outcome:
        observation = self.observe(key)
        plan = planning.plan(observation)
        failures = await self.applier.apply(plan)
        if failures:
            self._failures[key] = tuple(f"{f.target.kind} {f.target.name}: {f.error}" for f in failures)
        else:
            self._failures.pop(key, None)
        orphaned = (
            observation.topology is None and not observation.process_groups and not observation.singletons
        )
        if orphaned:
            self._failures.pop(key, None)
            return Outcome(finished=True)
        retry = FAILURE_RETRY_SECONDS if failures else self.resync_seconds
        return Outcome(requeue_after=min(plan.requeue_after or retry, retry))
