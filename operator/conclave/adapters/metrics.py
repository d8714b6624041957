"""Every Prometheus metric the operator exports, in one registry.

Labels are few and bounded (namespace, topology, controller, result): never a pod, member,
singleton or uid, which would make a series per object. Capabilities add their metrics
here, so the dashboard and the alert rules have one list to check against.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram, Info

from conclave import __version__
from conclave.core.plans import MetricSample

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = prometheus_client.CollectorRegistry(auto_describe=True)
# A custom registry has none of the default collectors: without these, nothing shows the
# operator's memory against its limit, its CPU, open files or garbage collections.
prometheus_client.ProcessCollector(registry=REGISTRY)
prometheus_client.PlatformCollector(registry=REGISTRY)
prometheus_client.GCCollector(registry=REGISTRY)

GC_PAUSE_SECONDS = Histogram(
    "conclave_gc_pause_seconds",
    "How long each cyclic garbage collection held the operator still, by generation "
    "(2: everything not frozen; runtime/collecting.py).",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
GC_FROZEN = Gauge(
    "conclave_gc_frozen_objects",
    "Objects the last freeze moved out of the garbage collector's reach.",
    registry=REGISTRY,
)
BUILD = Info("conclave_build", "The running operator's version.", registry=REGISTRY)
BUILD.info({"version": __version__})

LEADER = Gauge(
    "conclave_leader",
    "1 while this replica is the active one (holds the leader Lease), else 0.",
    registry=REGISTRY,
)
RECONCILE_TOTAL = Counter(
    "conclave_reconcile",
    "Supervisor iterations by controller and result (success, conflict, error).",
    ["controller", "result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "conclave_reconcile_seconds",
    "Time from a supervisor waking to its plan applied.",
    ["controller"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
API_ERRORS = Counter(
    "conclave_api_errors",
    "Failed Kubernetes API requests by verb and HTTP status (0: unreachable).",
    ["verb", "code"],
    registry=REGISTRY,
)
SUPERVISORS = Gauge(
    "conclave_supervisors",
    "Running supervisor tasks, one per ClusterTopology name in use.",
    registry=REGISTRY,
)
TOPOLOGY_MEMBERS = Gauge(
    "conclave_topology_members",
    "Discovered members by whether they count as ready (memberReadiness decides).",
    ["namespace", "topology", "ready"],
    registry=REGISTRY,
)
TOPOLOGY_PARTITIONED = Gauge(
    "conclave_topology_partitioned",
    "1 while the published verdict is Partitioned or Degraded, else 0.",
    ["namespace", "topology"],
    registry=REGISTRY,
)
TOPOLOGY_COMPONENTS = Gauge(
    "conclave_topology_components",
    "Connected components in the published verdict (1 when healthy, 0 when unknown).",
    ["namespace", "topology"],
    registry=REGISTRY,
)
TOPOLOGY_QUORUM = Gauge(
    "conclave_topology_quorum",
    "1 while a majority of connected members exists, else 0.",
    ["namespace", "topology"],
    registry=REGISTRY,
)
TOPOLOGY_MEMBERS_DOWN = Gauge(
    "conclave_topology_members_down",
    "Members whose probe was actively refused in the published verdict: crashed, not cut off.",
    ["namespace", "topology"],
    registry=REGISTRY,
)
MESH_CONNECTS = Counter(
    "conclave_mesh_connects",
    "connect: Mesh: members asked to connect a peer they missed, by result (done: the node said true; "
    "refused: it said false; error: the call failed).",
    ["namespace", "topology", "result"],
    registry=REGISTRY,
)
MESH_DISCONNECTS = Counter(
    "conclave_mesh_disconnects",
    "connect: Mesh: members asked to disconnect a node whose pod is gone, by result (done: it was "
    "connected; refused: it was not; error: the call failed).",
    ["namespace", "topology", "result"],
    registry=REGISTRY,
)
PROCESS_GROUP_MEMBERS = Gauge(
    "conclave_process_group_members",
    "Members of a process group (its scope and group, as in :pg).",
    ["namespace", "scope", "group"],
    registry=REGISTRY,
)
PROCESS_GROUP_MIN_MEMBERS = Gauge(
    "conclave_process_group_min_members",
    "A process group's spec.minMembers, so alerts can compare its size with it.",
    ["namespace", "scope", "group"],
    registry=REGISTRY,
)
PROCESS_GROUP_CHANGES = Counter(
    "conclave_process_group_changes",
    "Members that joined or left any process group.",
    registry=REGISTRY,
)
MEMBER_CHANGES = Counter(
    "conclave_member_changes",
    "Members that joined or left a topology.",
    ["change"],
    registry=REGISTRY,
)
DISCOVERY_SECONDS = Histogram(
    "conclave_discovery_seconds",
    "Time one discovery took, by strategy (a DNS lookup, or reading the watched EndpointSlices).",
    ["strategy"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
PROBE_SECONDS = Histogram(
    "conclave_probe_seconds",
    "Time one member probe took, by probe type.",
    ["type"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
PROBE_FAILURES = Counter(
    "conclave_probe_failures",
    "Probes that gave no usable view, by reason (Timeout, ConnectionRefused, WrongNode, ...).",
    ["reason"],
    registry=REGISTRY,
)
SINGLETONS = Gauge(
    "conclave_singletons",
    "Singletons that name this topology.",
    ["namespace", "topology"],
    registry=REGISTRY,
)
SINGLETON_PLACED = Gauge(
    "conclave_singleton_placed",
    "Singletons that have an owner (phase Placed); conclave_singletons minus this is unplaced.",
    ["namespace", "topology"],
    registry=REGISTRY,
)
SINGLETON_OWNER_CHANGES = Counter(
    "conclave_singleton_owner_changes",
    "Ownership writes: grants and revocations, by reason (Placed, OwnerGone, Released, NotReady, ...).",
    ["namespace", "topology", "reason"],
    registry=REGISTRY,
)
SINGLETON_FAILOVER_SECONDS = Histogram(
    "conclave_singleton_failover_seconds",
    "Time from the owner becoming ineligible, as the operator saw it in the API, to the next grant.",
    ["namespace", "topology"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0),
    registry=REGISTRY,
)
WRITES_TOTAL = Counter(
    "conclave_api_writes",
    "Writes the applier sent, by kind of write.",
    ["write"],
    registry=REGISTRY,
)


BY_NAME: dict[str, Gauge | Counter | Histogram] = {
    "conclave_topology_members": TOPOLOGY_MEMBERS,
    "conclave_member_changes": MEMBER_CHANGES,
    "conclave_topology_partitioned": TOPOLOGY_PARTITIONED,
    "conclave_topology_components": TOPOLOGY_COMPONENTS,
    "conclave_topology_quorum": TOPOLOGY_QUORUM,
    "conclave_topology_members_down": TOPOLOGY_MEMBERS_DOWN,
    "conclave_process_group_members": PROCESS_GROUP_MEMBERS,
    "conclave_process_group_min_members": PROCESS_GROUP_MIN_MEMBERS,
    "conclave_process_group_changes": PROCESS_GROUP_CHANGES,
    "conclave_singletons": SINGLETONS,
    "conclave_singleton_placed": SINGLETON_PLACED,
    "conclave_singleton_owner_changes": SINGLETON_OWNER_CHANGES,
    "conclave_singleton_failover_seconds": SINGLETON_FAILOVER_SECONDS,
}
"""The metrics a Plan may name (core names metrics; it never touches them)."""


GROUP_GAUGES = (PROCESS_GROUP_MEMBERS, PROCESS_GROUP_MIN_MEMBERS)


def group_series(samples: Iterable[MetricSample]) -> frozenset[tuple[str, str, str]]:
    """The (namespace, scope, group) series a plan sets: the groups it knows right now."""
    return frozenset(
        (s.labels["namespace"], s.labels["scope"], s.labels["group"])
        for s in samples
        if BY_NAME[s.metric] is PROCESS_GROUP_MEMBERS
    )


def forget_groups(series: Iterable[tuple[str, str, str]]) -> None:
    """Drop the series of groups deleted, re-scoped or renamed, so no stale size lingers."""
    for labels in series:
        for family in GROUP_GAUGES:
            with contextlib.suppress(KeyError):  # never set
                family.remove(*labels)


def forget_topology(namespace: str, topology: str) -> None:
    """Drop a deleted topology's series, so its last values do not linger on dashboards."""
    for ready in ("true", "false"):
        with contextlib.suppress(KeyError):  # never set
            TOPOLOGY_MEMBERS.remove(namespace, topology, ready)
    for family in (
        TOPOLOGY_PARTITIONED,
        TOPOLOGY_COMPONENTS,
        TOPOLOGY_QUORUM,
        TOPOLOGY_MEMBERS_DOWN,
        SINGLETONS,
        SINGLETON_PLACED,
        SINGLETON_FAILOVER_SECONDS,
    ):
        with contextlib.suppress(KeyError):
            family.remove(namespace, topology)
    for counter in (MESH_CONNECTS, MESH_DISCONNECTS):
        for result in ("done", "refused", "error"):
            with contextlib.suppress(KeyError):
                counter.remove(namespace, topology, result)
