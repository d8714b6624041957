"""What a supervisor saw, as plain frozen data: the only input of the planner."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from conclave.api import ClusterTopology, ProcessGroup, Singleton
from conclave.core.discovery import Endpoint, Resolution, ServiceState
from conclave.core.grouping import Address, GroupIdentity, PodFacts, Published
from conclave.core.ownership import LeaseState, Memory
from conclave.core.partitions import Debounced

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
class Observation:
    now: datetime.datetime
    namespace: str
    topology_name: str
    topology: Observed[ClusterTopology] | None
    process_groups: tuple[Observed[ProcessGroup], ...] = ()
    singletons: tuple[Observed[Singleton], ...] = ()
    write_failures: tuple[str, ...] = ()
    """What the previous iteration failed to write, to be surfaced as a condition."""
    cluster_domain: str = "cluster.local"
    service: ServiceState | None = None
    """The topology's Service (KubernetesAPI, KubernetesDNS); None when it names none."""
    endpoints: tuple[Endpoint, ...] = ()
    """Every address of the Service's EndpointSlices (KubernetesAPI)."""
    forbidden: tuple[str, ...] = ()
    """What RBAC refuses that discovery needs ("watch endpointslices.discovery.k8s.io")."""
    resolution: Resolution | None = None
    """The DNS lookup of this iteration (KubernetesDNS, DNSPoll)."""
    views: Mapping[str, frozenset[str] | None] = dataclasses.field(default_factory=dict)
    """Each probed member's own view (None: unknown); members not probed yet are absent."""
    view_reasons: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Why a member's view is unknown (Timeout, WrongNode, ...)."""
    partition_memory: Debounced | None = None
    """The debounce state the previous plan handed back; None after a restart."""
    pods: Mapping[str, PodFacts] = dataclasses.field(default_factory=dict)
    """The namespace's pods by name, terminating ones included (marked ``deleting``)."""
    groups: tuple[GroupIdentity, ...] = ()
    """Every ProcessGroup of the namespace, to name their Services without collisions."""
    services: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    """The namespace's Services: name → the ProcessGroup that owns it (None: not conclave's)."""
    endpoint_slices: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    """The namespace's EndpointSlices, likewise: a group's slice is named after its Service."""
    group_slices: Mapping[str, tuple[Address, ...]] = dataclasses.field(default_factory=dict)
    """conclave's EndpointSlices in the namespace: name → the addresses they publish."""
    published: tuple[Published, ...] = ()
    """The namespace's Services and EndpointSlices that a ProcessGroup controls."""
    members_config_map: Mapping[str, str] | None = None
    """The data of the <topology>-members ConfigMap; None when it does not exist."""
    clock: float = 0.0
    """The operator's monotonic clock at observation: lease waits are measured on it, never
    on a timestamp written by someone else."""
    leases: Mapping[str, LeaseState] = dataclasses.field(default_factory=dict)
    """The namespace's singleton Leases (labelled by conclave), by name."""
    singleton_names: frozenset[str] | None = None
    """Every Singleton of the namespace (whatever its topology), to clean up after deleted
    ones; None when unknown, and then nothing is cleaned."""
    singleton_memory: Mapping[str, Memory] = dataclasses.field(default_factory=dict)
    """What this process remembers of each singleton (by uid); empty after a restart."""
