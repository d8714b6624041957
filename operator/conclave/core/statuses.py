"""What every object's plan is built from: its reference, the TopologyFound condition a
dependent carries, and its status update (the kind's status model with the conditions
merged into the published ones and the generation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from conclave.api import Condition, Member
from conclave.api.base import Model
from conclave.core import conditions
from conclave.core.conditions import Wanted
from conclave.core.observations import Observation, Observed
from conclave.core.partitions import Verdict
from conclave.core.plans import EventIntent, ObjectRef, StatusUpdate

TOPOLOGY_FOUND = "TopologyFound"


@dataclasses.dataclass(frozen=True)
class TopologyView:
    """What a topology's plan tells its dependents: its members and its partition verdict."""

    published: list[Member]
    counting: list[Member]
    verdict: Verdict

    @property
    def down(self) -> list[str]:
        """The members the verdict lists as down (their nodes refused the probe)."""
        return [member for member, _ in self.verdict.down]


def ref(observed: Observed[Any]) -> ObjectRef:
    resource = observed.resource
    return ObjectRef(
        kind=type(resource).__name__,
        namespace=resource.metadata.namespace,
        name=resource.metadata.name,
        uid=observed.uid,
    )


def topology_found(observation: Observation) -> Wanted:
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


def found_events(target: ObjectRef, existing: Sequence[Condition], found: Wanted) -> list[EventIntent]:
    """An event when TopologyFound flips (not on a dependent's first, happy, visit)."""
    if conditions.flipped(existing, found) and (found.status is False or existing):
        kind: Literal["Normal", "Warning"] = "Normal" if found.status else "Warning"
        return [EventIntent(target, kind, found.reason, "Reconcile", found.message)]
    return []


class Seen(Protocol):
    """What a status update needs of an object, parsed (Observed) or not (Invalid)."""

    @property
    def generation(self) -> int: ...
    @property
    def resource_version(self) -> str: ...
    @property
    def wire_status(self) -> Mapping[str, Any]: ...


def status_update(
    observation: Observation,
    target: ObjectRef,
    seen: Seen,
    existing: Sequence[Condition],
    wanted: Sequence[Wanted],
    decided: Model,
    parsed: Model | None = None,
) -> StatusUpdate | None:
    """``decided`` with the conditions merged into the published ones, and the generation.

    ``parsed``: the object's status as the models read it from the API, when it is all of
    it; None is returned when that already holds exactly what is wanted (nothing to write,
    no patch to compute)."""
    published = conditions.merge(existing, wanted, seen.generation, observation.moment.wall)
    desired = decided.model_copy(update={"observed_generation": seen.generation, "conditions": published})
    if parsed is not None and desired == parsed:
        return None
    return StatusUpdate(target, seen.resource_version, seen.wire_status, desired)
