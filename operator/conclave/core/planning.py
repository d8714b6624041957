"""The planner: one Observation in, one Plan out. Every decision the operator makes about
a topology and the objects that name it is taken here, and nowhere else.

The plan holds one ObjectPlan per object (two for the topology, see below): the
topology's, then its groups', then its singletons', then those of objects whose spec the
models refuse (InvalidSpec). Planning what is already there yields plans that write
nothing, so a supervisor can run as often as it likes.

A topology's status is bounded by design, whatever its size: ``status.members`` lists at
most ``MEMBERS_SHOWN`` members (those not ready or down first, then the others, each part
by name), ``memberCount`` and ``readyMembers`` are exact, and the partition's lists are cut
the same way (``partitioning.bounded``). Every member is in the ``<name>-members``
ConfigMap: ``hosts`` and ``hosts.json`` name the members that count, ``members.json`` holds
every member's record, and is what the next plan compares with (joins, leaves, ``since``);
see ``members_data`` for what happens near the 1 MiB object limit. The ConfigMap is written
in a second plan of the topology, applied only once its status is published, and the
membership events go with it: whatever happens to either write, each change is announced
once.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from conclave.api import (
    ClusterTopology,
    ClusterTopologyStatus,
    Condition,
    Member,
    ProcessGroup,
    ProcessGroupStatus,
    SingletonStatus,
    durations,
)
from conclave.api.base import Model
from conclave.api.topologies import MEMBERS_SHOWN
from conclave.core import (
    conditions,
    discovery,
    grouping,
    lifecycle,
    meshing,
    ownership,
    partitioning,
    placement,
    validity,
)
from conclave.core.conditions import Wanted
from conclave.core.lifecycle import Context, SingletonFacts
from conclave.core.marks import MEMBERS_LABEL
from conclave.core.memory import Remembered, SingletonMemory
from conclave.core.observations import Observation, Observed
from conclave.core.partitions import Debounced, Verdict
from conclave.core.plans import (
    EventIntent,
    MeshPlan,
    MetricSample,
    ObjectPlan,
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


@dataclasses.dataclass(frozen=True)
class TopologyView:
    """What a topology's plan tells its dependents: its members and its partition verdict."""

    published: list[Member]
    counting: list[Member]
    verdict: Verdict


def plan(observation: Observation) -> Plan:
    objects: list[ObjectPlan] = []
    waits: list[float] = []
    view: TopologyView | None = None
    partition: Debounced | None = None
    mesh: MeshPlan | None = None
    if observation.topology is not None:
        topology, view, partition, wait = _topology_plan(observation, observation.topology)
        objects += topology
        waits += [wait] if wait is not None else []
        mesh = _mesh_plan(observation, observation.topology.resource, view)
        waits += [mesh.requeue_after] if mesh is not None and mesh.requeue_after is not None else []
    service_names = grouping.service_names(
        observation.publication.groups,
        grouping.holders(observation.publication.services, observation.publication.endpoint_slices),
    )
    objects += [_group_plan(observation, group, view, service_names) for group in observation.process_groups]
    singletons = _singletons_plan(observation, view)
    objects += singletons.objects
    waits += [singletons.requeue_after] if singletons.requeue_after is not None else []
    for invalid in observation.invalid:
        found = [] if invalid.ref.kind == "ClusterTopology" else [_topology_found(observation)]
        wanted, events = validity.invalid_spec(invalid)
        decided = validity.empty_status(invalid.ref.kind)
        update = _status_update(
            observation, invalid.ref, invalid, invalid.conditions, [*found, wanted], decided
        )
        objects.append(ObjectPlan(invalid.ref, status=update, events=tuple(events)))
    return Plan(
        objects=tuple(objects),
        pod_annotations=singletons.pod_annotations,
        metrics=singletons.metrics,
        requeue_after=min(waits, default=None),
        memory=Remembered(
            partition,
            singletons.memory.singletons,
            observation.memory.write_failures,
            mesh.memory if mesh is not None else observation.memory.mesh,
        ),
        mesh=mesh,
    )


def _mesh_plan(observation: Observation, topology: ClusterTopology, view: TopologyView) -> MeshPlan | None:
    """With ``connect: Mesh`` (and the erlang probe it needs): whom to connect, whom to cut."""
    if topology.spec.connect != "Mesh" or topology.spec.probe.type != "erlang":
        return None
    return meshing.plan(
        counting=view.counting,
        views=observation.views,
        before=topology.status.members,
        after=view.published,
        pods=observation.pods,
        memory=observation.memory.mesh,
        clock=observation.moment.monotonic,
    )


def ref(observed: Observed[Any]) -> ObjectRef:
    resource = observed.resource
    return ObjectRef(
        kind=type(resource).__name__,
        namespace=resource.metadata.namespace,
        name=resource.metadata.name,
        uid=observed.uid,
    )


def members_config_map_name(topology: str) -> str:
    return f"{topology}-members"


MEMBERS_RECORDS = "members.json"
CONFIG_MAP_BUDGET = 900 * 1024
"""What the members ConfigMap's data may take, under the API's 1 MiB object limit with room
for its metadata."""
SUMMARY_DROPS = ("nodeName", "pod")


def members_data(counted: Sequence[str], members: Sequence[Member]) -> dict[str, str]:
    """The members ConfigMap's data: ``hosts`` (one name a line) and ``hosts.json`` (a list)
    name the members that count; ``members.json`` is every member's record, sorted by name.

    When the whole would pass ``CONFIG_MAP_BUDGET`` (some 5,000 members), the records are
    summarised: they drop ``nodeName`` and ``pod`` (name, ip, ready and since stay, which is
    what joins, leaves and probes need), and say so under ``members.summarised``.
    """
    data = {"hosts": "".join(f"{name}\n" for name in counted), "hosts.json": json.dumps(counted)}
    records = [member.model_dump(mode="json", by_alias=True, exclude_none=True) for member in members]
    full = json.dumps(records, separators=(",", ":"))
    if sum(len(value) for value in data.values()) + len(full) <= CONFIG_MAP_BUDGET:
        return {**data, MEMBERS_RECORDS: full}
    summary = [{k: v for k, v in record.items() if k not in SUMMARY_DROPS} for record in records]
    note = f"over {CONFIG_MAP_BUDGET} bytes in full: records without {', '.join(SUMMARY_DROPS)}"
    return {**data, MEMBERS_RECORDS: json.dumps(summary, separators=(",", ":")), "members.summarised": note}


def members_from(data: Mapping[str, str] | None) -> list[Member] | None:
    """The member records a members ConfigMap holds; None when it holds none (it does not
    exist yet, or an older version wrote it) or they do not parse."""
    if not data or MEMBERS_RECORDS not in data:
        return None
    try:
        return [Member.model_validate(record) for record in json.loads(data[MEMBERS_RECORDS])]
    except ValueError:
        return None


def shown(members: Sequence[Member], down: Sequence[str]) -> list[Member]:
    """The members status lists: at most MEMBERS_SHOWN, those not ready or down first,
    then the others, each part by name (what a ``kubectl describe`` reader looks for)."""
    gone = set(down)
    ordered = sorted(members, key=lambda m: (m.ready and m.name not in gone, m.name))
    return ordered[:MEMBERS_SHOWN]


def _discover(observation: Observation, topology: ClusterTopology) -> discovery.Outcome:
    spec, seen = topology.spec, observation.discovery
    if spec.strategy == "Static":
        return discovery.static(spec)
    if seen.forbidden:
        return discovery.forbidden(seen.forbidden)
    where = {"namespace": observation.namespace, "domain": observation.cluster_domain}
    if spec.strategy == "KubernetesAPI" and seen.service is not None:
        return discovery.from_endpoints(spec, **where, service=seen.service, endpoints=seen.endpoints)
    if spec.strategy in ("KubernetesDNS", "DNSPoll") and seen.resolution is not None:
        return discovery.from_resolution(spec, **where, service=seen.service, resolved=seen.resolution)
    return discovery.Outcome(
        None, None, "DiscoveryPending", f"No {spec.strategy} discovery result has been observed yet"
    )


def _topology_plan(
    observation: Observation, topology: Observed[ClusterTopology]
) -> tuple[list[ObjectPlan], TopologyView, Debounced, float | None]:
    """The topology's own plans (its status and what describes it; then, once that is
    published, its members ConfigMap and the membership events), what its process groups
    and singletons build on, its partition debounce, and when to look again.

    ``status.members`` as observed is the full list (``reading`` reads it from the members
    ConfigMap), so joins, leaves and ``since`` are judged against every member."""
    spec, status = topology.resource.spec, topology.resource.status
    outcome = _discover(observation, topology.resource)
    if outcome.found is None:
        published = list(status.members)
    else:
        published = discovery.members(outcome.found, status.members, observation.moment.wall)
    counting = [m for m in published if discovery.counts(m, spec.member_readiness)]
    counted = [m.name for m in counting]
    discovered = Wanted(DISCOVERED, outcome.ok, outcome.reason, outcome.message)
    failures = observation.memory.write_failures
    if failures:
        ready = Wanted(READY, False, "ApiError", "; ".join(failures))
    elif discovered.status is not True:
        ready = Wanted(READY, False, discovered.reason, discovered.message)
    else:
        ready = Wanted(READY, True, "Reconciled", f"Generation {topology.generation} reconciled")
    owner = ref(topology)
    split = partitioning.plan(
        topology.resource,
        owner=owner,
        counting=counting,
        views=observation.views,
        memory=observation.memory.partition,
        now=observation.moment.wall,
    )
    listed = shown(published, [name for name, _ in split.memory.published.down])
    decided = ClusterTopologyStatus(
        members=listed,
        members_shown=len(listed),
        member_count=len(published),
        ready_members=len(counted),
        stale=True if outcome.found is None and published else None,
        partition=split.status,
    )
    wanted = [discovered, ready, *split.conditions]
    update = _status_update(observation, owner, topology, status.conditions, wanted, decided)
    events = _member_events(owner, status.members, published) if outcome.found is not None else []
    if outcome.ok is False and outcome.found is None and conditions.flipped(status.conditions, discovered):
        events.append(EventIntent(owner, "Warning", outcome.reason, "Discover", outcome.message))
    data = members_data(counted, published)
    owned: tuple[OwnedObject, ...] = ()
    if observation.discovery.members_config_map != data:
        owned = (
            OwnedObject(
                kind="ConfigMap",
                namespace=observation.namespace,
                name=members_config_map_name(owner.name),
                owner=owner,
                labels={MEMBERS_LABEL: owner.name},
                content={"data": data},
                exists=observation.discovery.members_config_map is not None,
            ),
        )
    labels = {"namespace": observation.namespace, "topology": owner.name}
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
    changes = [sample for sample in samples if sample.metric == "conclave_member_changes"]
    gauges = [sample for sample in samples if sample.metric != "conclave_member_changes"]
    joins = [e for e in events if e.reason in ("MemberJoined", "MemberLeft")]
    rest = [e for e in events if e not in joins]
    plans = [ObjectPlan(owner, status=update, events=tuple(rest + split.events), metrics=tuple(gauges))]
    if owned or joins or changes:  # applied only once the status above is published
        plans.append(ObjectPlan(owner, owned=owned, events=tuple(joins), metrics=tuple(changes)))
    view = TopologyView(published, counting, split.memory.published)
    return plans, view, split.memory, min(intervals, default=None)


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


def _topology_found(observation: Observation) -> Wanted:
    """The TopologyFound condition every dependent carries."""
    name = observation.topology_name
    invalid = observation.topology_invalid
    if invalid is not None:
        problems = "; ".join(str(error) for error in invalid.errors)
        return Wanted(TOPOLOGY_FOUND, False, "TopologyInvalid", f"ClusterTopology {name!r}: {problems}")
    if observation.topology is None:
        message = f"ClusterTopology {name!r} does not exist in namespace {observation.namespace!r}"
        return Wanted(TOPOLOGY_FOUND, False, "TopologyNotFound", message)
    return Wanted(TOPOLOGY_FOUND, True, "TopologyFound", f"ClusterTopology {name!r} exists")


def _found_events(target: ObjectRef, existing: Sequence[Condition], found: Wanted) -> list[EventIntent]:
    """An event when TopologyFound flips (not on a dependent's first, happy, visit)."""
    if conditions.flipped(existing, found) and (found.status is False or existing):
        kind: Literal["Normal", "Warning"] = "Normal" if found.status else "Warning"
        return [EventIntent(target, kind, found.reason, "Reconcile", found.message)]
    return []


def _group_plan(
    observation: Observation,
    dependent: Observed[ProcessGroup],
    view: TopologyView | None,
    service_names: dict[str, str],
) -> ObjectPlan:
    """``view`` is None when the topology is missing (or invalid)."""
    owner = ref(dependent)
    resource = dependent.resource
    found = _topology_found(observation)
    group = _membership(observation, resource, owner, view)
    decided = group.status
    owned: list[OwnedObject] = []
    removals: tuple[Removal, ...] = ()
    service = service_names.get(resource.metadata.name)
    chosen = group.chosen
    if service is not None:
        removals = tuple(grouping.leftovers(owner, service, observation.publication.published))
        if chosen is not None:
            decided = decided.model_copy(update={"service_name": service})
            exists = observation.publication.services.get(service) == owner.name
            slices = observation.publication.group_slices.get(service)
            owned = grouping.publication(owner, service, chosen, exists, slices)
    existing = resource.status.conditions
    update = _status_update(observation, owner, dependent, existing, [found, *group.conditions], decided)
    events = _found_events(owner, resource.status.conditions, found) + group.events
    return ObjectPlan(
        owner,
        owned=tuple(owned),
        status=update,
        removals=removals,
        events=tuple(events),
        metrics=tuple(group.metrics),
    )


def _membership(
    observation: Observation, resource: ProcessGroup, owner: ObjectRef, view: TopologyView | None
) -> grouping.GroupPlan:
    """The group's members: pods that match (source Pods) or nodes with processes in pg."""
    now = observation.moment.wall
    if view is None:
        return grouping.plan(resource, owner=owner, chosen=None, now=now)
    if resource.spec.source == "Pods":
        chosen = grouping.members(resource, view.counting, observation.pods)
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
class _Singletons:
    objects: list[ObjectPlan]
    pod_annotations: tuple[PodAnnotations, ...]
    metrics: tuple[MetricSample, ...]
    requeue_after: float | None
    memory: Remembered


def _singletons_plan(observation: Observation, view: TopologyView | None) -> _Singletons:
    """Every singleton of the topology: Leases, status, pod annotations, events, metrics.

    Without the topology nothing is decided: ownership stays as the Leases say.
    """
    labels = {"namespace": observation.namespace, "topology": observation.topology_name}
    objects, waits, memories = [], [], {}
    context = None
    loads: Counter[str] = Counter()
    balanced = [s for s in observation.singletons if lifecycle.balanced(s.resource.spec)]
    for seen in balanced:
        lease = observation.ownership.leases.get(seen.resource.metadata.name)
        loads.update([lease.holder] if lease is not None and lease.holder else [])
    if view is not None:
        down = [member for member, _ in view.verdict.down]
        candidates = placement.candidates(view.published, observation.pods, down)
        context = Context(
            candidates, observation.pods, view.verdict, observation.moment.monotonic, balanced=len(balanced)
        )
    placed = 0
    for observed in observation.singletons:
        owner, resource = ref(observed), observed.resource
        found, existing = _topology_found(observation), resource.status.conditions
        events = _found_events(owner, existing, found)
        if context is None:
            decided = SingletonStatus() if resource.status.phase else SingletonStatus(phase="Pending")
            update = _status_update(observation, owner, observed, existing, [found], decided)
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
        update = _status_update(observation, owner, observed, existing, wanted, single.status)
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
        if lifecycle.balanced(resource.spec) and single.status.owner:
            loads[single.status.owner] += 1  # the next singleton is decided against this one's choice
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
    return _Singletons(objects, cleanup, samples, min(waits, default=None), Remembered(singletons=memories))


class _Seen(Protocol):
    """What a status update needs of an object, parsed (Observed) or not (Invalid)."""

    @property
    def generation(self) -> int: ...
    @property
    def resource_version(self) -> str: ...
    @property
    def wire_status(self) -> Mapping[str, Any]: ...


def _status_update(
    observation: Observation,
    target: ObjectRef,
    seen: _Seen,
    existing: Sequence[Condition],
    wanted: Sequence[Wanted],
    decided: Model,
) -> StatusUpdate:
    """``decided`` with the conditions merged into the published ones, and the generation."""
    published = conditions.merge(existing, wanted, seen.generation, observation.moment.wall)
    desired = decided.model_copy(update={"observed_generation": seen.generation, "conditions": published})
    return StatusUpdate(target, seen.resource_version, seen.wire_status, desired)
