"""The plans of a topology's dependents: its ProcessGroups (membership, publication,
Populated) and its Singletons (Leases, status, pod marks, events, metrics).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence

from conclave.api import ProcessGroup, ProcessGroupStatus, SingletonStatus
from conclave.core import grouping, lifecycle, ownership
from conclave.core.conditions import Wanted
from conclave.core.facts import Published
from conclave.core.lifecycle import Context, SingletonFacts
from conclave.core.memory import Remembered, SingletonMemory
from conclave.core.observations import Observation, Observed
from conclave.core.placement import Candidate
from conclave.core.plans import MetricSample, ObjectPlan, ObjectRef, OwnedObject, PodAnnotations, Removal
from conclave.core.scoping import Scope
from conclave.core.statuses import TopologyView, found_events, ref, status_update, topology_found


@dataclasses.dataclass(frozen=True)
class Groups:
    """What every process group of one plan is decided against, worked out once."""

    view: TopologyView | None
    """None when the topology is missing (or invalid)."""
    service_names: Mapping[str, str]
    members: grouping.MemberIndex | None
    """The view's counting members by their pods' label sets."""
    published: Mapping[str, Sequence[Published]]
    """The namespace's Services and EndpointSlices that groups control, by group uid."""


def groups(observation: Observation, view: TopologyView | None) -> Groups:
    publication = observation.publication
    names = grouping.service_names(
        publication.groups, grouping.holders(publication.services, publication.endpoint_slices)
    )
    index = grouping.MemberIndex(view.counting, observation.pods) if view is not None else None
    return Groups(view, names, index, grouping.by_group(publication.published))


def group_plan(observation: Observation, dependent: Observed[ProcessGroup], context: Groups) -> ObjectPlan:
    owner = ref(dependent)
    resource = dependent.resource
    found = topology_found(observation)
    group = _membership(observation, resource, owner, context)
    decided = group.status
    owned: list[OwnedObject] = []
    removals: tuple[Removal, ...] = ()
    service = context.service_names.get(resource.metadata.name)
    chosen = group.chosen
    if service is not None:
        removals = tuple(grouping.leftovers(owner, service, context.published))
        if chosen is not None:
            decided = decided.model_copy(update={"service_name": service})
            exists = observation.publication.services.get(service) == owner.name
            slices = observation.publication.group_slices.get(service)
            owned = grouping.publication(owner, service, chosen, exists, slices)
    existing = resource.status.conditions
    update = status_update(
        observation, owner, dependent, existing, [found, *group.conditions], decided, resource.status
    )
    events = found_events(owner, resource.status.conditions, found) + group.events
    return ObjectPlan(
        owner,
        owned=tuple(owned),
        status=update,
        removals=removals,
        events=tuple(events),
        metrics=tuple(group.metrics),
    )


def _membership(
    observation: Observation, resource: ProcessGroup, owner: ObjectRef, context: Groups
) -> grouping.GroupPlan:
    """The group's members: pods that match (source Pods) or nodes with processes in pg."""
    now, view = observation.moment.wall, context.view
    if view is None:
        return grouping.plan(resource, owner=owner, chosen=None, now=now)
    if resource.spec.source == "Pods":
        chosen = grouping.members(resource, view.counting, observation.pods, context.members)
        return grouping.plan(resource, owner=owner, chosen=chosen, now=now)
    topology = observation.topology
    if topology is None or topology.resource.spec.probe.type != "erlang":
        message = "source Erlang needs the topology's probe.type erlang (and its cookieSecretRef)"
        return grouping.GroupPlan(
            ProcessGroupStatus(), [Wanted("Populated", None, "NoDistribution", message)], [], []
        )
    answers = observation.processes.get(resource.metadata.name, {})
    chosen, processes, unknown = grouping.local_members(view.counting, answers)
    if view.counting and len(unknown) == len(view.counting):
        message = "No node answered pg:get_local_members; the group's processes are unknown"
        return grouping.GroupPlan(
            ProcessGroupStatus(), [Wanted("Populated", None, "ProcessesUnknown", message)], [], []
        )
    return grouping.plan(resource, owner=owner, chosen=chosen, now=now, processes=processes, unknown=unknown)


@dataclasses.dataclass(frozen=True)
class Singletons:
    objects: list[ObjectPlan]
    pod_annotations: tuple[PodAnnotations, ...]
    metrics: tuple[MetricSample, ...]
    requeue_after: float | None
    memory: Remembered


def singletons_plan(
    observation: Observation,
    view: TopologyView | None,
    candidates: Mapping[str, Candidate],
    scope: Scope,
) -> Singletons:
    """The singletons of the topology that ``scope`` names: Leases, status, pod
    annotations, events, metrics. Those it leaves out keep their owners (and count, for
    the bounded loads, as their Leases say).

    Without the topology nothing is decided: ownership stays as the Leases say.
    """
    labels = {"namespace": observation.namespace, "topology": observation.topology_name}
    objects, waits, memories = [], [], {}
    context = None
    loads: Counter[str] = Counter()
    balanced = [s for s in observation.singletons if lifecycle.balanced(s.resource.spec)]
    for seen in balanced:
        lease = observation.ownership.leases.get(seen.resource.metadata.name)
        if lease is not None and lease.holder:
            loads[lease.holder] += 1
    if view is not None:
        context = Context(
            candidates, observation.pods, view.verdict, observation.moment.monotonic, balanced=len(balanced)
        )
    placed = 0
    for observed in observation.singletons:
        if not scope.plans_singleton(observed.resource.metadata.name):
            placed += observed.resource.status.phase == "Placed"
            continue
        owner, resource = ref(observed), observed.resource
        found, existing = topology_found(observation), resource.status.conditions
        events = found_events(owner, existing, found)
        if context is None:
            decided = SingletonStatus() if resource.status.phase else SingletonStatus(phase="Pending")
            update = status_update(observation, owner, observed, existing, [found], decided, resource.status)
            objects.append(ObjectPlan(owner, status=update, events=tuple(events)))
            placed += resource.status.phase == "Placed"
            continue
        facts = SingletonFacts(
            owner.name,
            f"{owner.namespace}/{owner.name}",
            resource.spec,
            resource.status,
            observation.ownership.leases.get(owner.name),
        )
        single = ownership.plan(
            facts,
            owner=owner,
            context=dataclasses.replace(context, loads=dict(loads)),
            memory=observation.memory.singletons.get(observed.uid, SingletonMemory()),
            now=observation.moment.wall,
            labels=labels,
        )
        wanted = [found, single.condition]
        update = status_update(observation, owner, observed, existing, wanted, single.status, resource.status)
        marks = tuple(
            PodAnnotations(observation.namespace, pod, observation.pods[pod].uid, {key: value})
            for pod, (key, value) in sorted(single.annotations.items())
        )
        objects.append(
            ObjectPlan(
                owner,
                owned=(single.lease,) if single.lease is not None else (),
                status=update,
                pod_annotations=marks,
                events=tuple(events + single.events),
                metrics=tuple(single.metrics),
            )
        )
        if lifecycle.balanced(resource.spec) and facts.lease is not None and facts.lease.holder:
            loads[facts.lease.holder] -= 1
        if lifecycle.balanced(resource.spec) and single.holder:
            loads[single.holder] += 1  # the next singleton is decided against this one's Lease
        waits += [single.requeue_after] if single.requeue_after is not None else []
        memories[observed.uid] = single.memory
        placed += single.status.phase == "Placed"
    cleanup: tuple[PodAnnotations, ...] = ()
    if observation.ownership.singleton_names is not None:
        orphans = ownership.orphaned(observation.pods, observation.ownership.singleton_names)
        cleanup = tuple(
            PodAnnotations(observation.namespace, pod, observation.pods[pod].uid, dict.fromkeys(keys))
            for pod, keys in sorted(orphans.items())
        )
    samples: tuple[MetricSample, ...] = ()
    if observation.singletons:
        samples = (
            MetricSample("conclave_singletons", labels, float(len(observation.singletons))),
            MetricSample("conclave_singleton_placed", labels, float(placed)),
            MetricSample("conclave_singleton_failover_seconds", labels, 0.0, "declare"),
        )
    return Singletons(objects, cleanup, samples, min(waits, default=None), Remembered(singletons=memories))
