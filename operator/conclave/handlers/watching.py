"""The watch handlers, registered on a registry of their own (no module-level state).

``on.event`` only: it is level-based and writes nothing to the watched objects, unlike
on.create/update, which annotate every object they handle (PITFALLS §1). Each handler
stores the object in the cache and wakes the supervisors of the topologies it concerns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kopf

from conclave.api import GROUP, VERSION
from conclave.cache import Cache
from conclave.core.planning import MEMBERS_LABEL
from conclave.observing import (
    CONFIG_MAP,
    ENDPOINT_SLICE,
    POD,
    PROCESS_GROUP,
    SERVICE,
    SERVICE_NAME_LABEL,
    SINGLETON,
    TOPOLOGY,
)
from conclave.supervising import Key, Supervisors


def configure(settings: kopf.OperatorSettings) -> None:
    """Watch only the ConfigMaps conclave owns, filtered by the API server."""
    settings.watching.label_selectors["v1", "configmaps"] = MEMBERS_LABEL


def register(registry: kopf.OperatorRegistry, cache: Cache, supervisors: Supervisors) -> None:
    def record(kind: str, event: kopf.RawEvent) -> dict[str, Any]:
        body: dict[str, Any] = dict(event["object"])
        metadata = body["metadata"]
        if event["type"] == "DELETED":
            cache.drop(kind, metadata["namespace"], metadata["name"])
        else:
            cache.put(kind, body)
        return body

    def topologies(namespace: str, service: str | None = None) -> Iterator[Key]:
        """The topologies of a namespace; with ``service``, only those discovering through it."""
        for topology in cache.in_namespace(TOPOLOGY, namespace):
            if service is None or topology.get("spec", {}).get("service") == service:
                yield Key(namespace, topology["metadata"]["name"])

    @kopf.on.event(GROUP, VERSION, "clustertopologies", registry=registry)
    async def topology_changed(event: kopf.RawEvent, **_: Any) -> None:
        body = record(TOPOLOGY, event)
        supervisors.wake(Key(body["metadata"]["namespace"], body["metadata"]["name"]))

    def dependent_changed(kind: str, event: kopf.RawEvent) -> None:
        body = record(kind, event)
        topology = body.get("spec", {}).get("topology")
        if topology:
            supervisors.wake(Key(body["metadata"]["namespace"], topology))

    @kopf.on.event(GROUP, VERSION, "processgroups", registry=registry)
    async def process_group_changed(event: kopf.RawEvent, **_: Any) -> None:
        dependent_changed(PROCESS_GROUP, event)

    @kopf.on.event(GROUP, VERSION, "singletons", registry=registry)
    async def singleton_changed(event: kopf.RawEvent, **_: Any) -> None:
        dependent_changed(SINGLETON, event)

    @kopf.on.event("discovery.k8s.io", "v1", "endpointslices", registry=registry)
    async def endpoint_slice_changed(event: kopf.RawEvent, **_: Any) -> None:
        body = record(ENDPOINT_SLICE, event)
        service = body["metadata"].get("labels", {}).get(SERVICE_NAME_LABEL)
        for key in topologies(body["metadata"]["namespace"], service) if service else ():
            supervisors.wake(key)

    @kopf.on.event("v1", "services", registry=registry)
    async def service_changed(event: kopf.RawEvent, **_: Any) -> None:
        body = record(SERVICE, event)
        for key in topologies(body["metadata"]["namespace"], body["metadata"]["name"]):
            supervisors.wake(key)

    @kopf.on.event("v1", "pods", registry=registry)
    async def pod_changed(event: kopf.RawEvent, **_: Any) -> None:
        body = record(POD, event)
        for key in topologies(body["metadata"]["namespace"]):
            supervisors.wake(key)

    @kopf.on.event("v1", "configmaps", registry=registry)
    async def members_config_map_changed(event: kopf.RawEvent, **_: Any) -> None:
        body = record(CONFIG_MAP, event)
        topology = body["metadata"].get("labels", {}).get(MEMBERS_LABEL)
        if topology:
            supervisors.wake(Key(body["metadata"]["namespace"], topology))
