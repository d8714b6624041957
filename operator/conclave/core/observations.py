"""What a supervisor saw, as plain frozen data: the only input of the planner.

One record per feature (discovery, probing, publication of groups, ownership), so a
decider takes the record it needs by name and a new fact has an obvious place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from conclave.api import ClusterTopology, Condition, ProcessGroup, Singleton
from conclave.core.facts import (
    Endpoint,
    LeaseState,
    Moment,
    PodFacts,
    Probed,
    Publication,
    Resolution,
    ServiceState,
)
from conclave.core.memory import Remembered
from conclave.core.plans import ObjectRef
from conclave.errors import FieldError

Resource = TypeVar("Resource", ClusterTopology, ProcessGroup, Singleton)


@dataclasses.dataclass(frozen=True)
class Observed(Generic[Resource]):
    """One object: its parsed model, and its status exactly as the API holds it (the
    applier diffs against that, so fields this version does not know are left alone)."""

    resource: Resource
    uid: str
    generation: int
    resource_version: str
    wire_status: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Invalid:
    """An object whose spec passed the CRD but not the models (the CRD in the cluster is
    another version's, or was edited): enough of it to say so on the object."""

    ref: ObjectRef
    generation: int
    resource_version: str
    wire_status: Mapping[str, Any]
    conditions: tuple[Condition, ...]
    """Its published conditions, as far as they parse."""
    topology: str | None
    """The topology its spec names, when that much could be read."""
    errors: tuple[FieldError, ...]


@dataclasses.dataclass(frozen=True)
class Discovery:
    """What the topology's discovery strategy has to go on."""

    service: ServiceState | None = None
    """The topology's Service (KubernetesAPI, KubernetesDNS); None when it names none."""
    endpoints: tuple[Endpoint, ...] = ()
    """Every address of the Service's EndpointSlices (KubernetesAPI)."""
    resolution: Resolution | None = None
    """The DNS lookup of this iteration (KubernetesDNS, DNSPoll)."""
    forbidden: tuple[str, ...] = ()
    """What RBAC refuses that discovery needs ("watch endpointslices.discovery.k8s.io")."""
    members_config_map: Mapping[str, str] | None = None
    """The data of the <topology>-members ConfigMap; None when it does not exist."""


@dataclasses.dataclass(frozen=True)
class Ownership:
    """The singletons' Leases, and which singletons exist at all."""

    leases: Mapping[str, LeaseState] = dataclasses.field(default_factory=dict)
    """The namespace's singleton Leases (labelled by conclave), by name."""
    singleton_names: frozenset[str] | None = None
    """Every Singleton of the namespace (whatever its topology), to clean up after deleted
    ones; None when unknown, and then nothing is cleaned."""


@dataclasses.dataclass(frozen=True)
class Observation:
    moment: Moment
    namespace: str
    topology_name: str
    topology: Observed[ClusterTopology] | None
    """None when it does not exist, or its spec is invalid (then it is in ``invalid``)."""
    process_groups: tuple[Observed[ProcessGroup], ...] = ()
    singletons: tuple[Observed[Singleton], ...] = ()
    invalid: tuple[Invalid, ...] = ()
    """The topology's objects (itself included) whose spec the models refuse."""
    cluster_domain: str = "cluster.local"
    pods: Mapping[str, PodFacts] = dataclasses.field(default_factory=dict)
    """The namespace's pods by name, terminating ones included (marked ``deleting``)."""
    discovery: Discovery = dataclasses.field(default_factory=Discovery)
    views: Mapping[str, Probed] = dataclasses.field(default_factory=dict)
    """Each probed member's own view; members not probed yet are absent."""
    processes: Mapping[str, Mapping[str, int | None]] = dataclasses.field(default_factory=dict)
    """For each ProcessGroup with source Erlang (by name): member → its node's local
    processes in the group (None: the node did not answer)."""
    publication: Publication = dataclasses.field(default_factory=Publication)
    ownership: Ownership = dataclasses.field(default_factory=Ownership)
    memory: Remembered = dataclasses.field(default_factory=Remembered)
    """What this process remembers of the topology; empty after a restart."""

    @property
    def topology_invalid(self) -> Invalid | None:
        return next((i for i in self.invalid if i.ref.kind == "ClusterTopology"), None)
