"""Builds a supervisor's Observation from the cache: the one place where watched JSON
becomes core's plain data. It reads; it never asks the API and never decides.

An object whose spec the models refuse is observed as ``Invalid`` (with every refused
field), never raised: one bad object must not stop the rest of its topology.

A topology's ``status.members``, as observed, is the full member list: its status shows a
bounded slice, and the members ConfigMap holds every member's record (``members.json``),
so probes, the mesh and the planner's joins and leaves see every member. Its
``wire_status`` stays exactly what the API holds, for the patches.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from conclave.adapters import metrics
from conclave.adapters.cache import Cache
from conclave.api import ClusterTopology, Condition, ProcessGroup, Singleton, kinds
from conclave.core import grouping, rosters
from conclave.core.facts import (
    Address,
    Endpoint,
    GroupIdentity,
    LeaseState,
    Moment,
    PodFacts,
    Probed,
    Publication,
    Published,
    Resolution,
    ServiceState,
)
from conclave.core.keys import Key
from conclave.core.marks import (
    GROUP_LABEL,
    MANAGED_BY,
    OWNER_ANNOTATION,
    OWNER_POD_ANNOTATION,
    OWNER_POD_UID_ANNOTATION,
    REASON_ANNOTATION,
)
from conclave.core.memory import Remembered
from conclave.core.observations import (
    Discovery,
    Invalid,
    Observation,
    Observed,
    Ownership,
    Resource,
)
from conclave.core.plans import ObjectRef
from conclave.errors import SpecError
from conclave.observe.probing import View

TOPOLOGY, PROCESS_GROUP, SINGLETON = kinds.TOPOLOGY.name, kinds.PROCESS_GROUP.name, kinds.SINGLETON.name
SERVICE, ENDPOINT_SLICE, POD = kinds.SERVICE.name, kinds.ENDPOINT_SLICE.name, kinds.POD.name
CONFIG_MAP, LEASE = kinds.CONFIG_MAP.name, kinds.LEASE.name
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"
"""The EndpointSlice controller's name on the slices it writes from a Service's pods."""


@dataclasses.dataclass(frozen=True)
class Lookups:
    """What this iteration's lookups found, each under its own timeout."""

    probed: Mapping[str, View] = dataclasses.field(default_factory=dict)
    resolution: Resolution | None = None
    forbidden: tuple[str, ...] = ()
    processes: Mapping[str, Mapping[str, int | None]] = dataclasses.field(default_factory=dict)
    """Source Erlang groups, by name: member → its node's local processes in the group."""


def observed(model: type[Resource], body: dict[str, Any]) -> Observed[Resource] | Invalid:
    """The object parsed, or (its spec refused) what is needed to say so on it."""
    metadata = body["metadata"]
    try:
        resource = model.from_api(body)
    except SpecError as error:
        return _invalid(model, body, error)
    return Observed(
        resource=resource,
        uid=metadata["uid"],
        generation=int(metadata.get("generation", 0)),
        resource_version=metadata["resourceVersion"],
        wire_status=body.get("status") or {},
    )


def parsed(
    cache: Cache, kind: str, model: type[Resource], body: dict[str, Any]
) -> Observed[Resource] | Invalid:
    """``observed(model, body)``, parsed once per resourceVersion (the cache keeps it), its
    spec and conditions shared with every other object's equal ones."""
    return cache.derived(kind, body, "observed", lambda fresh: _shared(cache, observed(model, fresh), fresh))


def _shared(
    cache: Cache, seen: Observed[Resource] | Invalid, body: dict[str, Any]
) -> Observed[Resource] | Invalid:
    """``seen`` with the spec and the conditions that other objects have equal (the same
    wire form) replaced by theirs: at 10,000 singletons, nearly half the memory of their
    parsed models."""
    if isinstance(seen, Invalid):
        return seen
    resource = seen.resource
    spec = cache.shared((type(resource.spec), _wire_key(body.get("spec"))), resource.spec)
    conditions = [
        cache.shared((Condition, _wire_key(wire)), condition)
        for condition, wire in zip(
            resource.status.conditions, (body.get("status") or {}).get("conditions") or [], strict=False
        )
    ]
    if len(conditions) != len(resource.status.conditions):
        conditions = resource.status.conditions  # not one to one with the wire: keep them as parsed
    status = resource.status.model_copy(update={"conditions": conditions})
    return dataclasses.replace(seen, resource=resource.model_copy(update={"spec": spec, "status": status}))


def _wire_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _invalid(model: type[Resource], body: dict[str, Any], error: SpecError) -> Invalid:
    metadata, status = body["metadata"], body.get("status") or {}
    parsed = []
    for condition in status.get("conditions") or []:
        try:
            parsed.append(Condition.model_validate(condition))
        except ValueError:
            continue  # one we cannot read is replaced when the conditions are written
    topology = (body.get("spec") or {}).get("topology")
    return Invalid(
        ref=ObjectRef(model.__name__, metadata["namespace"], metadata["name"], metadata["uid"]),
        generation=int(metadata.get("generation", 0)),
        resource_version=metadata["resourceVersion"],
        wire_status=status,
        conditions=tuple(parsed),
        topology=topology if isinstance(topology, str) else None,
        errors=error.fields,
    )


def with_all_members(topology: ClusterTopology, cache: Cache) -> ClusterTopology:
    """``topology`` with the members its members ConfigMap records in ``status.members``;
    as it is when the ConfigMap records none (then status is all there is)."""
    name = rosters.members_config_map_name(topology.metadata.name)
    config_map = cache.get(CONFIG_MAP, topology.metadata.namespace, name)
    members = (
        cache.derived(CONFIG_MAP, config_map, "members", lambda body: rosters.members_from(body.get("data")))
        if config_map is not None
        else None
    )
    if members is None:
        return topology
    status = topology.status.model_copy(update={"members": members})
    return topology.model_copy(update={"status": status})


def service_state(cache: Cache, namespace: str, name: str) -> ServiceState:
    service = cache.get(SERVICE, namespace, name)
    if service is None:
        return ServiceState(exists=False)
    return ServiceState(exists=True, headless=service.get("spec", {}).get("clusterIP") == "None")


def endpoints(cache: Cache, namespace: str, service: str) -> tuple[Endpoint, ...]:
    """Every address of every slice of the Service, joined with what its pod says.

    The EndpointSlice controller's slices follow the pods, a while behind: there, an
    endpoint whose pod is gone from the API (or is a same-named successor's) is leaving,
    whatever it still says. Slices that others manage are taken as they say.
    """
    found: list[Endpoint] = []
    for slice_ in cache.in_namespace(ENDPOINT_SLICE, namespace):
        labels = slice_["metadata"].get("labels", {})
        if labels.get(SERVICE_NAME_LABEL) != service:
            continue
        if slice_.get("addressType", "IPv4") != "IPv4":
            continue
        follows_pods = labels.get(MANAGED_BY_LABEL) == SLICE_CONTROLLER
        for entry in slice_.get("endpoints") or []:  # null when the slice is empty
            target = entry.get("targetRef") or {}
            pod_name = target.get("name") if target.get("kind") == "Pod" else None
            pod = cache.get(POD, namespace, pod_name) if pod_name else None
            gone = follows_pods and (
                pod is None or target.get("uid") not in (None, pod["metadata"].get("uid"))
            )
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
                        pod_leaving=gone or bool(pod and pod["metadata"].get("deletionTimestamp")),
                    )
                )
    return tuple(found)


def observe(
    cache: Cache,
    key: Key,
    *,
    moment: Moment,
    cluster_domain: str,
    lookups: Lookups,
    memory: Remembered,
) -> Observation:
    """Everything the planner needs about ``key``'s topology and the objects naming it."""
    body = cache.get(TOPOLOGY, key.namespace, key.topology)
    config_map = cache.get(CONFIG_MAP, key.namespace, rosters.members_config_map_name(key.topology))
    topology = parsed(cache, TOPOLOGY, ClusterTopology, body) if body else None
    if isinstance(topology, Observed):
        topology = dataclasses.replace(topology, resource=with_all_members(topology.resource, cache))
    invalid: list[Invalid] = [topology] if isinstance(topology, Invalid) else []

    def dependents(kind: str, model: type[Resource]) -> Iterator[Observed[Resource]]:
        for dependent in cache.in_namespace(kind, key.namespace):
            if (dependent.get("spec") or {}).get("topology") == key.topology:
                seen = parsed(cache, kind, model, dependent)
                if isinstance(seen, Invalid):
                    invalid.append(seen)
                else:
                    yield seen

    groups = tuple(dependents(PROCESS_GROUP, ProcessGroup))
    singletons = tuple(dependents(SINGLETON, Singleton))
    spec = (body or {}).get("spec") or {}
    service_name = spec.get("service")
    started = time.perf_counter()
    watched = endpoints(cache, key.namespace, service_name) if service_name else ()
    if spec.get("strategy") == "KubernetesAPI":
        metrics.DISCOVERY_SECONDS.labels(strategy="KubernetesAPI").observe(time.perf_counter() - started)
    return Observation(
        moment=moment,
        namespace=key.namespace,
        topology_name=key.topology,
        topology=topology if isinstance(topology, Observed) else None,
        process_groups=groups,
        singletons=singletons,
        invalid=tuple(invalid),
        cluster_domain=cluster_domain,
        pods=pods_of(cache, key.namespace),
        discovery=Discovery(
            service=service_state(cache, key.namespace, service_name) if service_name else None,
            endpoints=watched,
            resolution=lookups.resolution,
            forbidden=lookups.forbidden,
            members_config_map=(config_map.get("data") or {}) if config_map else None,
        ),
        views={member: Probed(view.connected, view.reason) for member, view in lookups.probed.items()},
        processes=lookups.processes,
        publication=publication(cache, key.namespace),
        ownership=Ownership(
            leases={
                lease["metadata"]["name"]: cache.derived(LEASE, lease, "state", lease_state)
                for lease in cache.in_namespace(LEASE, key.namespace)
            },
            singleton_names=frozenset(
                s["metadata"]["name"] for s in cache.in_namespace(SINGLETON, key.namespace)
            ),
        ),
        memory=memory,
    )


def publication(cache: Cache, namespace: str) -> Publication:
    return Publication(
        groups=tuple(
            GroupIdentity(
                name=body["metadata"]["name"],
                scope=(body.get("spec") or {}).get("scope", "default"),
                group=(body.get("spec") or {}).get("group", ""),
                created=body["metadata"].get("creationTimestamp", ""),
                service=(body.get("status") or {}).get("serviceName"),
            )
            for body in cache.in_namespace(PROCESS_GROUP, namespace)
        ),
        services=group_labels(cache, SERVICE, namespace),
        endpoint_slices=group_labels(cache, ENDPOINT_SLICE, namespace),
        group_slices=group_slices(cache, namespace),
        published=published(cache, namespace),
    )


def group_labels(cache: Cache, kind: str, namespace: str) -> dict[str, str | None]:
    """Each object's name → the ProcessGroup its conclave label names (None: none)."""
    return {
        body["metadata"]["name"]: (body["metadata"].get("labels") or {}).get(GROUP_LABEL)
        for body in cache.in_namespace(kind, namespace)
    }


def published(cache: Cache, namespace: str) -> tuple[Published, ...]:
    """Services and EndpointSlices whose controller is a ProcessGroup, by its uid."""
    found = []
    for kind in grouping.PUBLISHED_KINDS:
        for body in cache.in_namespace(kind, namespace):
            metadata = body["metadata"]
            controller = controller_of(metadata)
            if controller.get("kind") == "ProcessGroup" and controller.get("uid"):
                found.append(Published(kind, metadata["name"], metadata["uid"], controller["uid"]))
    return tuple(found)


def controller_of(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ownerReference marked controller; empty when there is none."""
    return next((r for r in metadata.get("ownerReferences") or [] if r.get("controller")), {})


def group_slices(cache: Cache, namespace: str) -> dict[str, tuple[Address, ...]]:
    """conclave's EndpointSlices (ProcessGroups'), by name, as the addresses they publish."""
    found = {}
    for body in cache.in_namespace(ENDPOINT_SLICE, namespace):
        labels = body["metadata"].get("labels") or {}
        if labels.get("endpointslice.kubernetes.io/managed-by") != MANAGED_BY:
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
    pods = cache.in_namespace(POD, namespace)
    return {pod["metadata"]["name"]: cache.derived(POD, pod, "facts", pod_facts) for pod in pods}


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
        last_owner=annotations.get(OWNER_ANNOTATION),
        last_owner_pod=annotations.get(OWNER_POD_ANNOTATION),
        last_owner_pod_uid=annotations.get(OWNER_POD_UID_ANNOTATION),
        reason=annotations.get(REASON_ANNOTATION),
    )


def topology_of(cache: Cache, key: Key) -> ClusterTopology | None:
    """The topology as the models read it, with every member in ``status.members``; None
    when it does not exist or does not parse."""
    body = cache.get(TOPOLOGY, key.namespace, key.topology)
    seen = parsed(cache, TOPOLOGY, ClusterTopology, body) if body else None
    if not isinstance(seen, Observed):
        return None
    return with_all_members(seen.resource, cache)


def process_groups_of(cache: Cache, key: Key) -> list[ProcessGroup]:
    """The topology's ProcessGroups whose spec the models accept."""
    found = []
    for body in cache.in_namespace(PROCESS_GROUP, key.namespace):
        if (body.get("spec") or {}).get("topology") == key.topology:
            seen = parsed(cache, PROCESS_GROUP, ProcessGroup, body)
            if isinstance(seen, Observed):  # else observed as Invalid by ``observe``
                found.append(seen.resource)
    return found
