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
see ``rosters.members_data`` for what happens near the 1 MiB object limit. The ConfigMap is written
in a second plan of the topology, applied only once its status is published, and the
membership events go with it: whatever happens to either write, each change is announced
once.
"""

from __future__ import annotations

from collections.abc import Sequence

from conclave.api import ClusterTopology, ClusterTopologyStatus, Member, durations
from conclave.core import (
    conditions,
    dependents,
    discovery,
    meshing,
    partitioning,
    placement,
    scoping,
    validity,
)
from conclave.core.conditions import Wanted
from conclave.core.marks import MEMBERS_LABEL
from conclave.core.memory import Remembered
from conclave.core.observations import Observation, Observed
from conclave.core.partitions import Debounced, Verdict
from conclave.core.plans import EventIntent, MeshPlan, MetricSample, ObjectPlan, ObjectRef, OwnedObject, Plan
from conclave.core.rosters import members_config_map_name, members_data, shown
from conclave.core.statuses import TopologyView, ref, status_update, topology_found

READY = "Ready"
UNKNOWN = Verdict("Unknown")
"""The verdict dependents are decided against while the topology is missing."""
DISCOVERED = "Discovered"


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
    candidates = placement.candidates(view.published, observation.pods, view.down) if view else {}
    basis = scoping.basis(
        observation,
        found=topology_found(observation),
        verdict=view.verdict if view else UNKNOWN,
        candidates=candidates,
        counting=view.counting if view else (),
    )
    scope = scoping.scope(observation, basis, observation.memory.basis)
    groups = observation.process_groups
    planned = [group for group in groups if scope.plans_group(group.resource.metadata.name)]
    if planned:
        context = dependents.groups(observation, view)
        objects += [dependents.group_plan(observation, group, context) for group in planned]
    singletons = dependents.singletons_plan(observation, view, candidates, scope)
    objects += singletons.objects
    waits += [singletons.requeue_after] if singletons.requeue_after is not None else []
    for invalid in observation.invalid:
        found = [] if invalid.ref.kind == "ClusterTopology" else [topology_found(observation)]
        wanted, events = validity.invalid_spec(invalid)
        decided = validity.empty_status(invalid.ref.kind)
        update = status_update(
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
            basis,
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
    update = status_update(observation, owner, topology, status.conditions, wanted, decided)
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
