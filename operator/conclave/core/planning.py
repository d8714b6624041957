"""The planner: one Observation in, one Plan out. Every decision the operator makes about
a topology and the objects that name it is taken here, and nowhere else.

Planning what is already there yields an empty plan (the applier sends nothing), so a
supervisor can run as often as it likes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from conclave.api import (
    ClusterTopology,
    ClusterTopologySpec,
    Condition,
    Member,
    ProcessGroup,
    durations,
)
from conclave.core import conditions, discovery, grouping, ownership, partitioning, placement
from conclave.core.conditions import Wanted
from conclave.core.observations import Observation, Observed, Resource
from conclave.core.partitions import Verdict
from conclave.core.plans import (
    EventIntent,
    MetricSample,
    ObjectRef,
    OwnedObject,
    Plan,
    PodAnnotations,
    Removal,
    StatusUpdate,
)

READY = "Ready"
DISCOVERED = "Discovered"
TOPOLOGY_FOUND = "TopologyFound"


def plan(observation: Observation) -> Plan:
    updates: list[StatusUpdate] = []
    events: list[EventIntent] = []
    owned: tuple[OwnedObject, ...] = ()
    samples: tuple[MetricSample, ...] = ()
    waits: list[float] = []
    memory = None
    view: TopologyView | None = None
    if observation.topology is not None:
        topology, view = _topology_plan(observation, observation.topology)
        updates += topology.status_updates
        events += topology.events
        owned, samples = topology.owned, topology.metrics
        waits += [topology.requeue_after] if topology.requeue_after is not None else []
        memory = topology.partition_memory
    service_names = grouping.service_names(
        observation.groups, grouping.holders(observation.services, observation.endpoint_slices)
    )
    removals: list[Removal] = []
    for group in observation.process_groups:
        update, group_events, group_samples, group_owned = _group_update(
            observation, group, view, service_names
        )
        updates.append(update)
        events += group_events
        samples += tuple(group_samples)
        owned += tuple(group_owned)
        if (service := service_names.get(group.resource.metadata.name)) is not None:
            removals += grouping.leftovers(ref(group), service, observation.published)
    singletons = _singletons_plan(observation, view)
    return Plan(
        status_updates=tuple(updates) + singletons.status_updates,
        events=tuple(events) + singletons.events,
        owned=singletons.owned + owned,  # Leases first: the status only mirrors them
        removals=tuple(removals),
        pod_annotations=singletons.pod_annotations,
        metrics=samples + singletons.metrics,
        requeue_after=min(
            waits + ([singletons.requeue_after] if singletons.requeue_after else []), default=None
        ),
        partition_memory=memory,
        singleton_memory=singletons.singleton_memory,
    )


@dataclasses.dataclass(frozen=True)
class TopologyView:
    """What a topology's plan tells its dependents: its members and its partition verdict."""

    published: list[Member]
    counting: list[Member]
    verdict: Verdict


def ref(observed: Observed[Any]) -> ObjectRef:
    resource = observed.resource
    return ObjectRef(
        kind=type(resource).__name__,
        namespace=resource.metadata.namespace,
        name=resource.metadata.name,
        uid=observed.uid,
    )


MEMBERS_LABEL = "conclave.dev/members-of"


def members_config_map_name(topology: str) -> str:
    return f"{topology}-members"


def _discover(observation: Observation, spec: ClusterTopologySpec) -> discovery.Outcome:
    if spec.strategy == "Static":
        return discovery.static(spec)
    if observation.forbidden:
        return discovery.forbidden(observation.forbidden)
    if spec.strategy == "KubernetesAPI" and observation.service is not None:
        return discovery.from_endpoints(
            spec,
            observation.namespace,
            observation.cluster_domain,
            observation.service,
            observation.endpoints,
        )
    if spec.strategy in ("KubernetesDNS", "DNSPoll") and observation.resolution is not None:
        return discovery.from_resolution(
            spec,
            observation.namespace,
            observation.cluster_domain,
            observation.service,
            observation.resolution,
        )
    return discovery.Outcome(
        None, None, "DiscoveryPending", f"No {spec.strategy} discovery result has been observed yet"
    )


def _topology_plan(
    observation: Observation, topology: Observed[ClusterTopology]
) -> tuple[Plan, TopologyView]:
    """The topology's own plan, and what its process groups and singletons build on."""
    spec, status = topology.resource.spec, topology.resource.status
    outcome = _discover(observation, spec)
    if outcome.found is None:
        published = list(status.members)
    else:
        published = discovery.members(outcome.found, status.members, observation.now)
    counting = [m for m in published if discovery.counts(m, spec.member_readiness)]
    counted = [m.name for m in counting]
    fields: dict[str, Any] = {
        "members": [m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in published],
        "memberCount": len(published),
        "readyMembers": len(counted),
        "stale": True if outcome.found is None and published else None,
    }
    discovered = Wanted(DISCOVERED, outcome.ok, outcome.reason, outcome.message)
    if observation.write_failures:
        ready = Wanted(READY, False, "ApiError", "; ".join(observation.write_failures))
    elif discovered.status is not True:
        ready = Wanted(READY, False, discovered.reason, discovered.message)
    else:
        ready = Wanted(READY, True, "Reconciled", f"Generation {topology.generation} reconciled")
    owner = ref(topology)
    labels = {"namespace": observation.namespace, "topology": owner.name}
    split = partitioning.plan(
        topology.resource,
        owner,
        counted,
        {m.name: m.ip for m in published if m.ip},
        observation.views,
        observation.view_reasons,
        observation.partition_memory,
        observation.now,
        labels,
    )
    update = _status_update(
        observation, topology, [discovered, ready, *split.conditions], fields | split.fields
    )

    events = _member_events(owner, status.members, published) if outcome.found is not None else []
    if outcome.ok is False and outcome.found is None and conditions.flipped(status.conditions, discovered):
        events.append(EventIntent(owner, "Warning", outcome.reason, "Discover", outcome.message))
    data = {"hosts": "".join(f"{name}\n" for name in counted), "hosts.json": json.dumps(counted)}
    owned: tuple[OwnedObject, ...] = ()
    if observation.members_config_map != data:
        owned = (
            OwnedObject(
                api_version="v1",
                kind="ConfigMap",
                plural="configmaps",
                namespace=observation.namespace,
                name=members_config_map_name(owner.name),
                owner=owner,
                labels={MEMBERS_LABEL: owner.name},
                content={"data": data},
                exists=observation.members_config_map is not None,
            ),
        )
    samples = [
        *split.metrics,
        MetricSample("conclave_topology_members", {**labels, "ready": "true"}, len(counted)),
        MetricSample(
            "conclave_topology_members", {**labels, "ready": "false"}, len(published) - len(counted)
        ),
    ]
    for change in ("joined", "left"):
        changed = sum(1 for e in events if e.reason == f"Member{change.capitalize()}")
        if changed:
            samples.append(MetricSample("conclave_member_changes", {"change": change}, changed, "inc"))
    intervals = []
    if spec.strategy in ("KubernetesDNS", "DNSPoll"):
        intervals.append(durations.parse(spec.polling_interval).total_seconds())
    if spec.probe.type != "none":
        intervals.append(durations.parse(spec.probe.interval).total_seconds())
    return (
        Plan(
            status_updates=(update,),
            events=tuple(events + split.events),
            owned=owned,
            metrics=tuple(samples),
            requeue_after=min(intervals, default=None),
            partition_memory=split.memory,
        ),
        TopologyView(published, counting, split.memory.published),
    )


def _member_events(owner: ObjectRef, before: Sequence[Member], after: Sequence[Member]) -> list[EventIntent]:
    """One event per member that joined or left; the first listing of a topology counts too."""
    old = {m.name: m for m in before}
    new = {m.name: m for m in after}
    events = [
        EventIntent(owner, "Normal", "MemberJoined", "Discover", f"Member {name} joined{_pod(new[name])}")
        for name in sorted(new.keys() - old.keys())
    ]
    events += [
        EventIntent(owner, "Normal", "MemberLeft", "Discover", f"Member {name} left{_pod(old[name])}")
        for name in sorted(old.keys() - new.keys())
    ]
    return events


def _pod(member: Member) -> str:
    return f" (pod {member.pod})" if member.pod else ""


def _topology_found(observation: Observation, dependent: Observed[Any]) -> tuple[Wanted, list[EventIntent]]:
    """The TopologyFound condition every dependent carries, and the event when it flips."""
    name = observation.topology_name
    if observation.topology is None:
        found = Wanted(
            TOPOLOGY_FOUND,
            False,
            "TopologyNotFound",
            f"ClusterTopology {name!r} does not exist in namespace {observation.namespace!r}",
        )
    else:
        found = Wanted(TOPOLOGY_FOUND, True, "TopologyFound", f"ClusterTopology {name!r} exists")
    existing: Sequence[Condition] = dependent.resource.status.conditions
    if conditions.flipped(existing, found) and (found.status is False or existing):
        kind: Literal["Normal", "Warning"] = "Normal" if found.status else "Warning"
        return found, [EventIntent(ref(dependent), kind, found.reason, "Reconcile", found.message)]
    return found, []


def _group_update(
    observation: Observation,
    dependent: Observed[ProcessGroup],
    view: TopologyView | None,
    service_names: Mapping[str, str],
) -> tuple[StatusUpdate, list[EventIntent], list[MetricSample], list[OwnedObject]]:
    """``view`` is None when the topology is missing."""
    found, events = _topology_found(observation, dependent)
    resource = dependent.resource
    chosen = None if view is None else grouping.members(resource, view.counting, observation.pods)
    group = grouping.plan(resource, ref(dependent), chosen, observation.now, observation.namespace)
    extra = group.fields
    owned: list[OwnedObject] = []
    service = service_names.get(resource.metadata.name)
    if service is not None and chosen is not None:
        extra = {**extra, "serviceName": service}
        owner = ref(dependent)
        exists = observation.services.get(service) == owner.name
        owned = grouping.publication(owner, service, chosen, exists, observation.group_slices.get(service))
    update = _status_update(observation, dependent, [found, *group.conditions], extra)
    return update, events + group.events, group.metrics, owned


def _singletons_plan(observation: Observation, view: TopologyView | None) -> Plan:
    """Every singleton of the topology: Leases, status, pod annotations, events, metrics.

    Without the topology nothing is decided: ownership stays as the Leases say.
    """
    labels = {"namespace": observation.namespace, "topology": observation.topology_name}
    updates, events, leases, samples, waits = [], [], [], [], []
    annotations: dict[str, dict[str, str | None]] = {}
    memories = {}
    candidates = placement.candidates(view.published, observation.pods) if view is not None else {}
    placed = 0
    for observed in observation.singletons:
        found, found_events = _topology_found(observation, observed)
        events += found_events
        resource = observed.resource
        if view is None:
            fields: Mapping[str, Any] = {} if resource.status.phase else {"phase": "Pending"}
            updates.append(_status_update(observation, observed, [found], fields))
            placed += resource.status.phase == "Placed"
            continue
        memory = observation.singleton_memory.get(observed.uid, ownership.Memory())
        single = ownership.plan(
            resource,
            ref(observed),
            observation.leases.get(resource.metadata.name),
            candidates,
            observation.pods,
            view.verdict,
            memory,
            observation.clock,
            observation.now,
            labels,
        )
        updates.append(_status_update(observation, observed, [found, single.condition], single.fields))
        events += single.events
        samples += single.metrics
        leases += [single.lease] if single.lease is not None else []
        waits += [single.requeue_after] if single.requeue_after is not None else []
        memories[observed.uid] = single.memory
        placed += single.fields.get("phase") == "Placed"
        for pod, (key, value) in single.annotations.items():
            annotations.setdefault(pod, {})[key] = value
    if observation.singleton_names is not None:
        for pod, keys in ownership.orphaned(observation.pods, observation.singleton_names).items():
            annotations.setdefault(pod, {}).update(dict.fromkeys(keys))
    if observation.singletons:
        samples.append(MetricSample("conclave_singletons", labels, float(len(observation.singletons))))
        samples.append(MetricSample("conclave_singleton_placed", labels, float(placed)))
        samples.append(MetricSample("conclave_singleton_failover_seconds", labels, 0.0, "declare"))
    return Plan(
        status_updates=tuple(updates),
        events=tuple(events),
        owned=tuple(leases),
        pod_annotations=tuple(
            PodAnnotations(observation.namespace, pod, observation.pods[pod].uid, changes)
            for pod, changes in sorted(annotations.items())
        ),
        metrics=tuple(samples),
        requeue_after=min(waits, default=None),
        singleton_memory=memories,
    )


def _status_update(
    observation: Observation,
    observed: Observed[Resource],
    wanted: Sequence[Wanted],
    fields: Mapping[str, Any],
) -> StatusUpdate:
    published = conditions.merge(
        observed.resource.status.conditions, wanted, observed.generation, observation.now
    )
    desired = {
        **observed.wire_status,
        **fields,
        "observedGeneration": observed.generation,
        "conditions": [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in published],
    }
    return StatusUpdate(
        target=ref(observed),
        resource_version=observed.resource_version,
        current=observed.wire_status,
        desired=desired,
    )
