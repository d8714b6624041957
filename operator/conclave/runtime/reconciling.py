"""One supervisor iteration: observe (from the cache) → plan (pure) → apply.

Every decision is recomputed from what the API shows, so a restart or a missed event
loses nothing. Between iterations only three things are remembered, each safe to lose:
the previous iteration's write failures (the next plan turns them into a condition), the
partition debounce (re-seeded from status) and each singleton's clock readings (a lost
one makes a pending grant wait its full lease duration afresh).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from conclave.act.applying import Applier
from conclave.adapters import metrics
from conclave.adapters.cache import Cache
from conclave.core import ownership, planning
from conclave.core.keys import Key
from conclave.core.partitions import Debounced
from conclave.observe import permissions, reading, resolving
from conclave.runtime.supervising import Outcome

FAILURE_RETRY_SECONDS = 5.0


class Reconciler:
    def __init__(
        self,
        cache: Cache,
        applier: Applier,
        clock: Callable[[], float],
        resync_seconds: float,
        cluster_domain: str = "cluster.local",
        nameserver: resolving.Server | None = None,
        checker: permissions.Permissions | None = None,
    ) -> None:
        self.cache = cache
        self.applier = applier
        self.clock = clock
        self.resync_seconds = resync_seconds
        self.cluster_domain = cluster_domain
        self.nameserver = nameserver
        self.checker = checker
        self._failures: dict[Key, tuple[str, ...]] = {}
        self._partition_memory: dict[Key, Debounced] = {}
        self._singleton_memory: dict[Key, Mapping[str, ownership.Memory]] = {}
        self._group_series: dict[Key, frozenset[tuple[str, str, str]]] = {}

    async def __call__(self, key: Key) -> Outcome:
        topology = reading.topology_of(self.cache, key)
        probed, resolution, refused = await asyncio.gather(  # independent lookups, each with its timeout
            reading.probe_members(topology),
            reading.resolve(topology, self.cluster_domain, self._nameserver),
            reading.refused(topology, self.checker),
        )
        observation = reading.observe(
            self.cache,
            key,
            self.clock(),
            self.cluster_domain,
            self._failures.get(key, ()),
            probed,
            self._partition_memory.get(key),
            resolution,
            refused,
            time.monotonic(),
            self._singleton_memory.get(key),
        )
        plan = planning.plan(observation)
        if plan.partition_memory is not None:
            self._partition_memory[key] = plan.partition_memory
        failures = await self.applier.apply(plan)
        applied = time.monotonic()  # a revocation this plan wrote is committed by now
        self._singleton_memory[key] = {uid: m.stamped(applied) for uid, m in plan.singleton_memory.items()}
        series = metrics.group_series(plan.metrics)
        metrics.forget_groups(self._group_series.get(key, frozenset()) - series)
        self._group_series[key] = series
        if failures:
            self._failures[key] = tuple(f"{f.target.kind} {f.target.name}: {f.error}" for f in failures)
        else:
            self._failures.pop(key, None)
        if observation.topology is None:
            metrics.forget_topology(key.namespace, key.topology)
            self._partition_memory.pop(key, None)
            if not observation.process_groups and not observation.singletons:
                self._singleton_memory.pop(key, None)
                self._failures.pop(key, None)
                self._group_series.pop(key, None)
                return Outcome(finished=True)
        retry = FAILURE_RETRY_SECONDS if failures else self.resync_seconds
        return Outcome(requeue_after=min(plan.requeue_after or retry, retry))

    def _nameserver(self) -> resolving.Server:
        """The configured nameserver, else the pod's own (read when first needed)."""
        if self.nameserver is None:
            self.nameserver = resolving.system_nameserver()
        return self.nameserver
