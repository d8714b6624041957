"""One supervisor iteration: observe (the cache, probes, DNS, RBAC) → plan (pure) → apply.

Every decision is recomputed from what the API shows, so a restart or a missed event
loses nothing. Between iterations only the topology's ``Remembered`` record is kept, and
it is saved at one moment, after the plan is applied: for each object, what the plan
decided if its writes took effect, else what was remembered before (a revocation that was
never written must not start a lease wait; a verdict whose status was not published must
still be announced).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import math
import time
from collections.abc import Callable

from conclave.act import meshing
from conclave.act.applying import Applied, Applier
from conclave.adapters import metrics
from conclave.adapters.cache import Cache
from conclave.adapters.distribution import Pool, own_node_name
from conclave.api import ClusterTopology
from conclave.core import planning
from conclave.core.facts import Moment
from conclave.core.keys import Key
from conclave.core.memory import Basis, Remembered
from conclave.core.observations import Observation
from conclave.core.plans import MeshPlan, Plan
from conclave.errors import ConflictError
from conclave.observe import beam, permissions, probing, reading, resolving
from conclave.runtime.supervising import Outcome

FAILURE_RETRY_SECONDS = 5.0

logger = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self,
        cache: Cache,
        applier: Applier,
        *,
        clock: Callable[[], float],
        resync_seconds: float,
        cluster_domain: str = "cluster.local",
        nameserver: resolving.Server | None = None,
        checker: permissions.Permissions | None = None,
        distribution: Pool | None = None,
    ) -> None:
        """``clock`` is the wall clock (seconds since the epoch), for what is published."""
        self.cache = cache
        self.applier = applier
        self.clock = clock
        self.resync_seconds = resync_seconds
        self.cluster_domain = cluster_domain
        self.nameserver = nameserver
        self.checker = checker
        self.distribution = distribution or Pool(applier.api, own_node_name(applier.identity))
        """Erlang distribution clients, for the erlang probe, the mesh and pg groups."""
        self._memory: dict[Key, Remembered] = {}
        self._meshing: set[asyncio.Task[None]] = set()
        """connect: Mesh calls still waiting for the nodes' answers."""
        self._group_series: dict[Key, dict[str, frozenset[tuple[str, str, str]]]] = {}
        """The metric series each group's last plan set, by group name."""
        self._full_at: dict[Key, float] = {}
        """When each key's dependents were last all planned (monotonic)."""

    async def __call__(self, key: Key) -> Outcome:
        """Raises ConflictError, after saving what took effect, when an object must be
        planned again at once."""
        topology = reading.topology_of(self.cache, key)
        erlang = topology is not None and topology.spec.probe.type == "erlang"
        groups = reading.process_groups_of(self.cache, key)

        def present(pod: str) -> bool:
            return self.cache.get(reading.POD, key.namespace, pod) is not None

        started = time.perf_counter()
        probed, resolution, refused, processes = await asyncio.gather(  # each with its own timeout
            beam.views(self.distribution, topology, present)
            if erlang and topology
            else probing.probe_members(topology),
            resolving.resolve_topology(topology, self.cluster_domain, self._nameserver),
            permissions.refused(topology, self.checker),
            beam.group_members(self.distribution, topology, groups, present),
        )
        remembered = self._memory.get(key, Remembered())
        if time.monotonic() - self._full_at.get(key, -math.inf) >= self.resync_seconds:
            remembered = dataclasses.replace(remembered, basis=None)  # the resync: plan everything
        if remembered.basis is None:
            self._full_at[key] = time.monotonic()
        # until this iteration is applied, a failure must leave the next one a full look
        self._memory[key] = dataclasses.replace(remembered, basis=None)
        observation = reading.observe(
            self.cache,
            key,
            moment=Moment(datetime.datetime.fromtimestamp(self.clock(), datetime.UTC), time.monotonic()),
            cluster_domain=self.cluster_domain,
            lookups=reading.Lookups(probed, resolution, refused, processes),
            memory=remembered,
        )
        planning_started = time.perf_counter()
        plan = planning.plan(observation)
        planned = time.perf_counter()
        if plan.mesh is not None and observation.topology is not None:
            self._mesh(observation.topology.resource, plan.mesh)
        applied = await self.applier.apply(plan)
        logger.debug(
            "Planned %s (%s): %d of %d objects in %.3fs (after %.3fs looking), applied in %.3fs",
            key,
            "all" if remembered.basis is None else "what changed",
            len(plan.objects),
            1 + len(observation.process_groups) + len(observation.singletons) + len(observation.invalid),
            planned - planning_started,
            planning_started - started,
            time.perf_counter() - planned,
        )
        self._memory[key] = remember(remembered, plan, applied, time.monotonic())
        self._forget_group_series(key, observation, plan)
        if applied.conflicted:
            names = ", ".join(f"{ref.kind} {ref.name}" for ref in applied.conflicted)
            raise ConflictError(409, "Conflict", f"{names} changed since read")
        exists = observation.topology is not None or observation.topology_invalid is not None
        if not exists:
            metrics.forget_topology(key.namespace, key.topology)
            if not observation.process_groups and not observation.singletons and not observation.invalid:
                self._memory.pop(key, None)
                self._group_series.pop(key, None)
                self._full_at.pop(key, None)
                return Outcome(finished=True)
        retry = FAILURE_RETRY_SECONDS if applied.failures else self.resync_seconds
        return Outcome(requeue_after=min(plan.requeue_after or retry, retry))

    def _forget_group_series(self, key: Key, observation: Observation, plan: Plan) -> None:
        """Drop the series of groups that are gone or set other labels now; a group this
        plan left out keeps the series its last plan set."""
        before = self._group_series.get(key, {})
        planned = {
            item.target.name: metrics.group_series(item.metrics)
            for item in plan.objects
            if item.target.kind == "ProcessGroup"
        }
        present = {group.resource.metadata.name for group in observation.process_groups}
        now = {name: planned.get(name, before.get(name, frozenset())) for name in present | planned.keys()}
        kept = frozenset().union(*now.values())
        metrics.forget_groups(frozenset().union(*before.values()) - kept)
        self._group_series[key] = now

    def _mesh(self, topology: ClusterTopology, mesh: MeshPlan) -> None:
        """Ask the nodes for the mesh's connects and disconnects, beside the iteration: a
        node's answer can take up to probe.timeout (a connect across a cut waits it out),
        and neither the status writes nor the next iteration may wait for it. The plan's
        per-pair backoff keeps a pair from being asked again meanwhile."""
        task = asyncio.create_task(meshing.carry_out(self.distribution, topology, mesh))
        self._meshing.add(task)
        task.add_done_callback(self._meshed)

    def _meshed(self, task: asyncio.Task[None]) -> None:
        self._meshing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Asking the nodes to connect or disconnect failed", exc_info=task.exception())

    async def close(self) -> None:
        """Stop asking the nodes, and close the Erlang distribution connections."""
        for task in self._meshing:
            task.cancel()
        await asyncio.gather(*self._meshing, return_exceptions=True)
        await self.distribution.close()

    def _nameserver(self) -> resolving.Server:
        """The configured nameserver, else the pod's own (read when first needed)."""
        if self.nameserver is None:
            self.nameserver = resolving.system_nameserver()
        return self.nameserver


def remember(previous: Remembered, plan: Plan, applied: Applied, now: float) -> Remembered:
    """What to remember: per object, what its writes made true.

    ``now`` stamps revocations written in this iteration: they are committed by now.
    """
    published_uids = {ref.uid for ref in applied.published}
    written_uids = {ref.uid for ref in applied.written}
    topology = next((item.target for item in plan.objects if item.target.kind == "ClusterTopology"), None)
    partition = plan.memory.partition
    if topology is not None and topology.uid not in published_uids:
        partition = previous.partition
    singletons = {
        uid: memory.stamped(now) if uid in written_uids else previous.singletons[uid]
        for uid, memory in plan.memory.singletons.items()
        if uid in written_uids or uid in previous.singletons
    }
    failures = tuple(f"{f.target.kind} {f.target.name}: {f.error}" for f in applied.failures)
    return Remembered(partition, singletons, failures, plan.memory.mesh, _settled(plan, applied))


def _settled(plan: Plan, applied: Applied) -> Basis | None:
    """The plan's basis without what did not take effect, so that it is planned again: an
    object not published (a write failed or conflicted), or whose pod marks were not written.
    Its pods carry the marks as written: pods are compared by value, so a mark someone puts
    back, after this write, to what the plan saw before it must still look changed."""
    basis = plan.memory.basis
    if basis is None:
        return None
    undone = {
        (item.target.kind, item.target.name) for item in plan.objects if item.target not in applied.published
    }
    undone |= {(ref.kind, ref.name) for ref in applied.conflicted}
    undone |= {(failure.target.kind, failure.target.name) for failure in applied.failures}
    undone |= {(ref.kind, ref.name) for ref in applied.unmarked}
    pods = dict(basis.pods)
    for mark in applied.marked:
        pod = pods.get(mark.name)
        if pod is not None and pod.uid == mark.uid:
            merged = {**pod.annotations, **mark.annotations}
            pods[mark.name] = dataclasses.replace(
                pod, annotations={key: value for key, value in merged.items() if value is not None}
            )
    return dataclasses.replace(
        basis,
        pods=pods,
        singletons={n: v for n, v in basis.singletons.items() if ("Singleton", n) not in undone},
        groups={n: v for n, v in basis.groups.items() if ("ProcessGroup", n) not in undone},
    )
