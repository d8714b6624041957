"""The planner: one Observation in, one Plan out. Every decision the operator makes about
a topology and the objects that name it is taken here, and nowhere else.

Planning what is already there yields an empty plan (the applier sends nothing), so a
supervisor can run as often as it likes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from conclave.api import (
    ClusterTopology,
    ClusterTopologySpec,
    Condition,
    Member,
    ProcessGroup,
    Singleton,
    durations,
)
from conclave.core import conditions, discovery, grouping, partitioning
from conclave.core.conditions import Wanted
from conclave.core.observations import Observation, Observed, Resource
from conclave.core.plans import EventIntent, MetricSample, ObjectRef, OwnedObject, Plan, StatusUpdate

READY = "Ready"
DISCOVERED = "Discovered"
TOPOLOGY_FOUND = "TopologyFound"


def plan(observation: Observation) -> Plan:
    updates: list[StatusUpdate] = []
    events: list[EventIntent] = []
    owned: tuple[OwnedObject, ...] = ()
    samples: tuple[MetricSample, ...] = ()
    requeue_after = None
    memory = None
    counting: list[Member] | None = None
    if observation.topology is not None:
        topology, counting = _topology_plan(observation, observation.topology)
        updates += topology.status_updates
        events += topology.events
        owned, samples, requeue_after = topology.owned, topology.metrics, topology.requeue_after
        memory = topology.partition_memory
    dependents: list[Observed[Any]] = [*observation.process_groups, *observation.singletons]
    service_names = grouping.service_names(
        observation.groups, frozenset(name for name, owner in observation.services.items() if owner is None)
    )
    for dependent in dependents:
        update, dependent_events, dependent_samples, dependent_owned = _dependent_update(
            observation, dependent, counting, service_names
        )
        updates.append(update)
        events += dependent_events
        samples += tuple(dependent_samples)
        owned += tuple(dependent_owned)
    return Plan(
        status_updates=tuple(updates),
        events=tuple(events),
        owned=owned,
        metrics=samples,
        requeue_after=requeue_after,
        partition_memory=memory,
    )


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
) -> tuple[Plan, list[Member]]:
    """The topology's own plan, and the members that count (for its process groups)."""
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
        counting,
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


def _dependent_update(
    observation: Observation,
    dependent: Observed[Any],
    counting: Sequence[Member] | None,
    service_names: Mapping[str, str],
) -> tuple[StatusUpdate, list[EventIntent], list[MetricSample], list[OwnedObject]]:
    """``counting``: the topology's members that count; None when the topology is missing."""
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
    resource = dependent.resource
    extra: dict[str, Any] = {}
    wanted = [found]
    events: list[EventIntent] = []
    samples: list[MetricSample] = []
    owned: list[OwnedObject] = []
    if isinstance(resource, Singleton) and not resource.status.phase:
        extra["phase"] = "Pending"
    if isinstance(resource, ProcessGroup):
        chosen = None if counting is None else grouping.members(resource, counting, observation.pods)
        group = grouping.plan(resource, ref(dependent), chosen, observation.now, observation.namespace)
        extra, wanted, events, samples = group.fields, [found, *group.conditions], group.events, group.metrics
        service = service_names.get(resource.metadata.name)
        if service is not None and chosen is not None:
            extra = {**extra, "serviceName": service}
            owner = ref(dependent)
            exists = observation.services.get(service) == owner.name
            owned = grouping.publication(
                owner, service, chosen, exists, observation.group_slices.get(service)
            )
    existing: Sequence[Condition] = resource.status.conditions
    if conditions.flipped(existing, found) and (found.status is False or existing):
        kind: Literal["Normal", "Warning"] = "Normal" if found.status else "Warning"
        events = [EventIntent(ref(dependent), kind, found.reason, "Reconcile", found.message), *events]
    return _status_update(observation, dependent, wanted, extra), events, samples, owned


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
