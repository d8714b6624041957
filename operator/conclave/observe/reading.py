"""Builds a supervisor's Observation from the cache: the one place where watched JSON
becomes core's plain data. It reads; it never asks the API and never decides."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping
from typing import Any

from conclave.adapters import metrics
from conclave.adapters.cache import Cache
from conclave.api import ClusterTopology, ProcessGroup, Singleton, durations
from conclave.core import discovery, grouping, ownership, planning
from conclave.core.discovery import Endpoint, Resolution, ServiceState
from conclave.core.grouping import Address, GroupIdentity, PodFacts
from conclave.core.keys import Key
from conclave.core.observations import Observation, Observed, Resource
from conclave.core.ownership import LeaseState, Memory
from conclave.core.partitions import Debounced
from conclave.errors import DNSError
from conclave.observe import permissions, probing, resolving

TOPOLOGY, PROCESS_GROUP, SINGLETON = "ClusterTopology", "ProcessGroup", "Singleton"
SERVICE, ENDPOINT_SLICE, POD, CONFIG_MAP, LEASE = "Service", "EndpointSlice", "Pod", "ConfigMap", "Lease"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def observed(model: type[Resource], body: dict[str, Any]) -> Observed[Resource]:
    metadata = body["metadata"]
    return Observed(
        resource=model.from_api(body),
        uid=metadata["uid"],
        generation=int(metadata.get("generation", 0)),
        resource_version=metadata["resourceVersion"],
        wire_status=body.get("status") or {},
    )


def service_state(cache: Cache, namespace: str, name: str) -> ServiceState:
    service = cache.get(SERVICE, namespace, name)
    if service is None:
        return ServiceState(exists=False)
    return ServiceState(exists=True, headless=service.get("spec", {}).get("clusterIP") == "None")


def endpoints(cache: Cache, namespace: str, service: str) -> tuple[Endpoint, ...]:
    """Every address of every slice of the Service, joined with what its pod says."""
    found: list[Endpoint] = []
    for slice_ in cache.in_namespace(ENDPOINT_SLICE, namespace):
        if slice_["metadata"].get("labels", {}).get(SERVICE_NAME_LABEL) != service:
            continue
        if slice_.get("addressType", "IPv4") != "IPv4":
            continue
        for entry in slice_.get("endpoints") or []:  # null when the slice is empty
            target = entry.get("targetRef") or {}
            pod_name = target.get("name") if target.get("kind") == "Pod" else None
            pod = cache.get(POD, namespace, pod_name) if pod_name else None
            conditions = entry.get("conditions") or {}
            for address in entry.get("addresses") or []:
                found.append(
                    Endpoint(
                        ip=address,
                        pod=pod_name,
                        # unset "ready" means ready, by the EndpointSlice API's own definition
                        ready=conditions.get("ready") is not False,
                        terminating=bool(conditions.get("terminating")),
                        hostname=entry.get("hostname"),
                        node_name=entry.get("nodeName"),
                        pod_deleting=bool(pod and pod["metadata"].get("deletionTimestamp")),
                    )
                )
    return tuple(found)


def observe(
    cache: Cache,
    key: Key,
    now: float,
    cluster_domain: str,
    failures: tuple[str, ...],
    probed: Mapping[str, probing.View] | None = None,
    partition_memory: Debounced | None = None,
    resolution: Resolution | None = None,
    forbidden: tuple[str, ...] = (),
    clock: float = 0.0,
    singleton_memory: Mapping[str, Memory] | None = None,
) -> Observation:
    topology = cache.get(TOPOLOGY, key.namespace, key.topology)

    def dependents(kind: str, model: type[Resource]) -> tuple[Observed[Resource], ...]:
        return tuple(
            observed(model, body)
            for body in cache.in_namespace(kind, key.namespace)
            if body.get("spec", {}).get("topology") == key.topology
        )

    service_name = (topology or {}).get("spec", {}).get("service")
    strategy = (topology or {}).get("spec", {}).get("strategy", "")
    started = time.perf_counter()
    watched = endpoints(cache, key.namespace, service_name) if service_name else ()
    if strategy == "KubernetesAPI":
        metrics.DISCOVERY_SECONDS.labels(strategy=strategy).observe(time.perf_counter() - started)
    config_map = cache.get(CONFIG_MAP, key.namespace, planning.members_config_map_name(key.topology))
    return Observation(
        now=datetime.datetime.fromtimestamp(now, datetime.UTC),  # exact: debounces compare it
        namespace=key.namespace,
        topology_name=key.topology,
        topology=observed(ClusterTopology, topology) if topology else None,
        process_groups=dependents(PROCESS_GROUP, ProcessGroup),
        singletons=dependents(SINGLETON, Singleton),
        write_failures=failures,
        cluster_domain=cluster_domain,
        service=service_state(cache, key.namespace, service_name) if service_name else None,
        endpoints=watched,
        members_config_map=(config_map.get("data") or {}) if config_map else None,
        views={member: view.connected for member, view in (probed or {}).items()},
        view_reasons={member: view.reason for member, view in (probed or {}).items() if view.reason},
        partition_memory=partition_memory,
        resolution=resolution,
        forbidden=forbidden,
        pods=pods_of(cache, key.namespace),
        groups=tuple(
            GroupIdentity(
                name=body["metadata"]["name"],
                scope=body.get("spec", {}).get("scope", "default"),
                group=body.get("spec", {}).get("group", ""),
                created=body["metadata"].get("creationTimestamp", ""),
                service=(body.get("status") or {}).get("serviceName"),
            )
            for body in cache.in_namespace(PROCESS_GROUP, key.namespace)
        ),
        services=group_labels(cache, SERVICE, key.namespace),
        endpoint_slices=group_labels(cache, ENDPOINT_SLICE, key.namespace),
        group_slices=group_slices(cache, key.namespace),
        published=published(cache, key.namespace),
        clock=clock,
        leases={
            body["metadata"]["name"]: lease_state(body) for body in cache.in_namespace(LEASE, key.namespace)
        },
        singleton_memory=singleton_memory or {},
        singleton_names=frozenset(
            body["metadata"]["name"] for body in cache.in_namespace(SINGLETON, key.namespace)
        ),
    )


def group_labels(cache: Cache, kind: str, namespace: str) -> dict[str, str | None]:
    """Each object's name → the ProcessGroup its conclave label names (None: none)."""
    return {
        body["metadata"]["name"]: (body["metadata"].get("labels") or {}).get(grouping.GROUP_LABEL)
        for body in cache.in_namespace(kind, namespace)
    }


def published(cache: Cache, namespace: str) -> tuple[grouping.Published, ...]:
    """Services and EndpointSlices whose controller is a ProcessGroup, by its uid."""
    found = []
    for kind in grouping.PUBLISHED_KINDS:
        for body in cache.in_namespace(kind, namespace):
            metadata = body["metadata"]
            controller = controller_of(metadata)
            if controller.get("kind") == "ProcessGroup" and controller.get("uid"):
                found.append(grouping.Published(kind, metadata["name"], metadata["uid"], controller["uid"]))
    return tuple(found)


def controller_of(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ownerReference marked controller; empty when there is none."""
    return next((r for r in metadata.get("ownerReferences") or [] if r.get("controller")), {})


def group_slices(cache: Cache, namespace: str) -> dict[str, tuple[Address, ...]]:
    """conclave's EndpointSlices (ProcessGroups'), by name, as the addresses they publish."""
    found = {}
    for body in cache.in_namespace(ENDPOINT_SLICE, namespace):
        labels = body["metadata"].get("labels") or {}
        if labels.get("endpointslice.kubernetes.io/managed-by") != grouping.MANAGED_BY:
            continue
        found[body["metadata"]["name"]] = tuple(
            sorted(
                (address, entry.get("nodeName"), (entry.get("targetRef") or {}).get("name"))
                for entry in body.get("endpoints") or []
                for address in entry.get("addresses") or []
            )
        )
    return found


def pods_of(cache: Cache, namespace: str) -> dict[str, PodFacts]:
    return {pod["metadata"]["name"]: pod_facts(pod) for pod in cache.in_namespace(POD, namespace)}


def pod_facts(pod: Mapping[str, Any]) -> PodFacts:
    metadata, status = pod["metadata"], pod.get("status") or {}
    conditions = status.get("conditions") or []
    return PodFacts(
        name=metadata["name"],
        labels=metadata.get("labels") or {},
        ip=status.get("podIP"),
        uid=metadata.get("uid", ""),
        phase=status.get("phase", ""),
        ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
        deleting=bool(metadata.get("deletionTimestamp")),
        annotations=metadata.get("annotations") or {},
    )


def lease_state(lease: Mapping[str, Any]) -> LeaseState:
    metadata, spec = lease["metadata"], lease.get("spec") or {}
    annotations = metadata.get("annotations") or {}
    return LeaseState(
        resource_version=metadata["resourceVersion"],
        controller_uid=controller_of(metadata).get("uid"),
        holder=spec.get("holderIdentity") or None,
        epoch=int(spec.get("leaseTransitions") or 0),
        duration_seconds=spec.get("leaseDurationSeconds"),
        last_owner=annotations.get(ownership.OWNER_ANNOTATION),
        last_owner_pod=annotations.get(ownership.OWNER_POD_ANNOTATION),
        last_owner_pod_uid=annotations.get(ownership.OWNER_POD_UID_ANNOTATION),
        reason=annotations.get(ownership.REASON_ANNOTATION),
    )


def topology_of(cache: Cache, key: Key) -> ClusterTopology | None:
    body = cache.get(TOPOLOGY, key.namespace, key.topology)
    return ClusterTopology.from_api(body) if body else None


async def probe_members(topology: ClusterTopology | None) -> dict[str, probing.View]:
    """Ask the topology's counted members (as its status lists them) for their views."""
    if topology is None:
        return {}
    probe = topology.spec.probe
    if probe.type == "none" or probe.port is None:
        return {}
    targets = [
        probing.Target(member.name, member.ip)
        for member in topology.status.members
        if member.ip and discovery.counts(member, topology.spec.member_readiness)
    ]
    timeout = durations.parse(probe.timeout).total_seconds()
    return await probing.probe(probe.type, targets, probe.port, probe.path, timeout)


async def resolve(
    topology: ClusterTopology | None, domain: str, server: Callable[[], resolving.Server]
) -> Resolution | None:
    """Look up the name a DNS strategy polls; None for the other strategies."""
    if topology is None or topology.spec.strategy not in ("KubernetesDNS", "DNSPoll"):
        return None
    spec = topology.spec
    name = discovery.dns_name(spec, topology.metadata.namespace, domain)
    timeout = min(2.0, durations.parse(spec.polling_interval).total_seconds())
    started = time.perf_counter()
    try:
        addresses = await resolving.resolve_a(name, server(), timeout)
    except DNSError as error:
        return Resolution(name, error=error.reason, message=str(error))
    finally:
        metrics.DISCOVERY_SECONDS.labels(strategy=spec.strategy).observe(time.perf_counter() - started)
    return Resolution(name, tuple(addresses))


WATCHED_BY_STRATEGY: dict[str, list[permissions.Check]] = {
    "KubernetesAPI": [
        (group, resource, verb)
        for group, resource in (("discovery.k8s.io", "endpointslices"), ("", "pods"), ("", "services"))
        for verb in ("list", "watch")
    ],
    "KubernetesDNS": [("", "services", "list"), ("", "services", "watch")],
}


async def refused(
    topology: ClusterTopology | None, checker: permissions.Permissions | None
) -> tuple[str, ...]:
    """What RBAC refuses of the watches the topology's strategy relies on."""
    if topology is None or checker is None:
        return ()
    checks = WATCHED_BY_STRATEGY.get(topology.spec.strategy, [])
    return tuple(await checker.denied(topology.metadata.namespace, checks)) if checks else ()
