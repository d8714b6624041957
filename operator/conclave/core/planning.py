"""The planner: one Observation in, one Plan out. Every decision the operator makes about
a topology and the objects that name it is taken here, and nowhere else.

Planning what is already there yields an empty plan (the applier sends nothing), so a
supervisor can run as often as it likes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conclave.api import ClusterTopology, Condition
from conclave.core import conditions, discovery
from conclave.core.conditions import Wanted
from conclave.core.observations import Observation, Observed, Resource
from conclave.core.plans import EventIntent, ObjectRef, Plan, StatusUpdate

READY = "Ready"
DISCOVERED = "Discovered"
TOPOLOGY_FOUND = "TopologyFound"


def plan(observation: Observation) -> Plan:
    updates: list[StatusUpdate] = []
    events: list[EventIntent] = []
    if observation.topology is not None:
        updates.append(_topology_update(observation, observation.topology))
    dependents: list[Observed[Any]] = [*observation.process_groups, *observation.singletons]
    for dependent in dependents:
        update, event = _dependent_update(observation, dependent)
        updates.append(update)
        if event is not None:
            events.append(event)
    return Plan(status_updates=tuple(updates), events=tuple(events))


def ref(observed: Observed[Any]) -> ObjectRef:
    resource = observed.resource
    return ObjectRef(
        kind=type(resource).__name__,
        namespace=resource.metadata.namespace,
        name=resource.metadata.name,
        uid=observed.uid,
    )


def _topology_update(observation: Observation, topology: Observed[ClusterTopology]) -> StatusUpdate:
    spec, status = topology.resource.spec, topology.resource.status
    fields: dict[str, Any] = {}
    if spec.strategy == "Static":
        found = discovery.static(spec)
        published = discovery.members(found, status.members, observation.now)
        fields = {
            "members": [m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in published],
            "memberCount": len(published),
            "readyMembers": sum(member.ready for member in published),
            "stale": None,
        }
        discovered = Wanted(DISCOVERED, True, "MembersFound", f"{len(published)} members from spec.hosts")
    else:
        discovered = Wanted(
            DISCOVERED, None, "DiscoveryPending", f"No {spec.strategy} discovery result has been observed yet"
        )
    if observation.write_failures:
        ready = Wanted(READY, False, "ApiError", "; ".join(observation.write_failures))
    elif discovered.status is not True:
        ready = Wanted(READY, False, discovered.reason, discovered.message)
    else:
        ready = Wanted(READY, True, "Reconciled", f"Generation {topology.generation} reconciled")
    return _status_update(observation, topology, [discovered, ready], fields)


def _dependent_update(
    observation: Observation, dependent: Observed[Any]
) -> tuple[StatusUpdate, EventIntent | None]:
    kind = type(dependent.resource).__name__
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
    extra: dict[str, Any] = {}
    if kind == "Singleton" and not dependent.resource.status.phase:
        extra["phase"] = "Pending"
    event = None
    existing: Sequence[Condition] = dependent.resource.status.conditions
    if conditions.flipped(existing, found) and (found.status is False or existing):
        event = EventIntent(
            regarding=ref(dependent),
            type="Normal" if found.status else "Warning",
            reason=found.reason,
            action="Reconcile",
            note=found.message,
        )
    return _status_update(observation, dependent, [found], extra), event


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
