"""The watch handlers, registered on a registry of their own (no module-level state).

``on.event`` only: it is level-based and writes nothing to the watched objects, unlike
on.create/update, which annotate every object they handle (PITFALLS §1). An index stores
each object in the cache; the event handler wakes the supervisors of the topologies it
concerns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import kopf

from conclave.adapters.cache import Cache
from conclave.api import GROUP, VERSION
from conclave.core.keys import Key
from conclave.core.marks import LEASE_LABEL, MEMBERS_LABEL
from conclave.observe.reading import (
    CONFIG_MAP,
    ENDPOINT_SLICE,
    LEASE,
    POD,
    PROCESS_GROUP,
    SERVICE,
    SERVICE_NAME_LABEL,
    SINGLETON,
    TOPOLOGY,
)


def configure(settings: kopf.OperatorSettings) -> None:
    """Watch only the ConfigMaps and Leases conclave owns, filtered by the API server."""
    settings.watching.label_selectors["v1", "configmaps"] = MEMBERS_LABEL
    settings.watching.label_selectors["coordination.k8s.io", "leases"] = LEASE_LABEL


Affected = Callable[[dict[str, Any]], Iterable[Key]]


def register(registry: kopf.OperatorRegistry, cache: Cache, wake: Callable[[Key], None]) -> None:
    """Watch every kind conclave reads; ``wake(key)`` asks for topology ``key`` to be looked at
    (the runtime's supervisors; handlers never plan or write themselves)."""

    def watch(kind: str, group: str, version: str, plural: str, affected: Affected) -> None:
        """Cache every ``plural`` object and wake the supervisors it concerns.

        The cache is filled by a kopf index: kopf runs no other handler until every
        watched kind's initial listing is indexed, so no supervisor ever plans from a
        half-listed cluster (an owner pod not listed yet must never look gone).
        """

        @kopf.index(group, version, plural, registry=registry, id=f"cache/{plural}")
        async def remember(body: kopf.Body, **_: Any) -> None:
            cache.put(kind, body)

        @kopf.on.event(group, version, plural, registry=registry, id=f"wake/{plural}")
        async def changed(event: kopf.RawEvent, **_: Any) -> None:
            body: dict[str, Any] = dict(event["object"])
            if event["type"] == "DELETED":
                metadata = body["metadata"]
                cache.drop(kind, metadata["namespace"], metadata["name"])
            for key in affected(body):
                wake(key)

    def topologies(namespace: str, service: str | None = None) -> Iterator[Key]:
        """The topologies of a namespace; with ``service``, only those discovering through it."""
        for topology in cache.in_namespace(TOPOLOGY, namespace):
            if service is None or topology.get("spec", {}).get("service") == service:
                yield Key(namespace, topology["metadata"]["name"])

    def itself(body: dict[str, Any]) -> Iterator[Key]:
        yield Key(body["metadata"]["namespace"], body["metadata"]["name"])

    def its_topology(body: dict[str, Any]) -> Iterator[Key]:
        topology = body.get("spec", {}).get("topology")
        if topology:
            yield Key(body["metadata"]["namespace"], topology)

    def by_service_label(body: dict[str, Any]) -> Iterator[Key]:
        service = body["metadata"].get("labels", {}).get(SERVICE_NAME_LABEL)
        return topologies(body["metadata"]["namespace"], service) if service else iter(())

    def by_service(body: dict[str, Any]) -> Iterator[Key]:
        return topologies(body["metadata"]["namespace"], body["metadata"]["name"])

    def in_namespace(body: dict[str, Any]) -> Iterator[Key]:
        return topologies(body["metadata"]["namespace"])

    def members_of(body: dict[str, Any]) -> Iterator[Key]:
        topology = body["metadata"].get("labels", {}).get(MEMBERS_LABEL)
        if topology:
            yield Key(body["metadata"]["namespace"], topology)

    def singleton_of_lease(body: dict[str, Any]) -> Iterator[Key]:
        """A singleton's Lease bears its name; the singleton names the topology."""
        metadata = body["metadata"]
        singleton = cache.get(SINGLETON, metadata["namespace"], metadata["name"])
        return its_topology(singleton) if singleton else iter(())

    watch(TOPOLOGY, GROUP, VERSION, "clustertopologies", itself)
    watch(PROCESS_GROUP, GROUP, VERSION, "processgroups", its_topology)
    watch(SINGLETON, GROUP, VERSION, "singletons", its_topology)
    watch(ENDPOINT_SLICE, "discovery.k8s.io", "v1", "endpointslices", by_service_label)
    watch(SERVICE, "", "v1", "services", by_service)
    watch(POD, "", "v1", "pods", in_namespace)
    watch(CONFIG_MAP, "", "v1", "configmaps", members_of)
    watch(LEASE, "coordination.k8s.io", "v1", "leases", singleton_of_lease)
