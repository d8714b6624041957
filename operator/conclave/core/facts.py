"""What observing hands to the deciders: plain, frozen facts about the world.

Every decider imports its inputs from here and none from another decider, so core has no
import cycle and a fact has one definition. Facts are what the watches, probes, DNS and
RBAC showed; what the operator decided earlier is in ``core.memory``.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class Moment:
    """When an observation was made, by both clocks, kept apart by type and name: the
    wall clock dates what is published; the monotonic clock times the operator's own
    waits, which must never trust a timestamp written by someone else."""

    wall: datetime.datetime
    monotonic: float


@dataclasses.dataclass(frozen=True)
class PodFacts:
    """What planning needs of a pod: labels for selectors; the rest for singleton owners."""

    name: str
    labels: Mapping[str, str]
    ip: str | None = None
    uid: str = ""
    phase: str = ""
    ready: bool = False
    deleting: bool = False
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One address of an EndpointSlice, with what its pod adds."""

    ip: str
    pod: str | None
    """The targetRef's name when it refers to a Pod; other endpoints are not members."""
    ready: bool
    terminating: bool
    hostname: str | None = None
    node_name: str | None = None
    pod_leaving: bool = False
    """The pod has a deletionTimestamp, or (in the EndpointSlice controller's slices) is gone
    from the API or replaced by a same-named pod: it is leaving, even if its endpoint still
    says ready (the controller removes a deleted pod's endpoint later, up to a second at a
    hundred deletions)."""


@dataclasses.dataclass(frozen=True)
class ServiceState:
    exists: bool
    headless: bool = True


@dataclasses.dataclass(frozen=True)
class Resolution:
    """What one DNS lookup gave: addresses, or why there are none."""

    name: str
    addresses: tuple[str, ...] = ()
    error: str | None = None
    """None when the lookup succeeded; else the failure's reason (NXDOMAIN, Timeout, ...)."""
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Probed:
    """What probing a member found: its own view, who it is connected to (None: unknown),
    and why that is unknown."""

    connected: frozenset[str] | None
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class LeaseState:
    """A singleton's Lease as observed."""

    resource_version: str
    controller_uid: str | None
    holder: str | None
    epoch: int
    duration_seconds: int | None
    last_owner: str | None = None
    """The member granted last (kept through a revocation, so its pod can be checked)."""
    last_owner_pod: str | None = None
    last_owner_pod_uid: str | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class GroupIdentity:
    """What naming a group's Service needs to know of every ProcessGroup in the namespace."""

    name: str
    scope: str
    group: str
    created: str
    service: str | None = None
    """The Service name its status reports, kept while it is still the group's to keep: a
    group's DNS name must not change under the apps that resolve it."""


Address = tuple[str, str | None, str | None]
"""(ip, Kubernetes node, pod) of one published member."""


@dataclasses.dataclass(frozen=True)
class Published:
    """A Service or EndpointSlice a ProcessGroup controls (its ownerReference says which)."""

    kind: str
    name: str
    uid: str
    group_uid: str


@dataclasses.dataclass(frozen=True)
class Publication:
    """The namespace's Services and EndpointSlices, for naming and publishing groups."""

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
