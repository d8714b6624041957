"""The watch handlers, registered on a registry of their own (no module-level state).

``on.event`` only: it is level-based and writes nothing to the watched objects, unlike
on.create/update, which annotate every object they handle (PITFALLS §1). An index stores
each object in the cache; the event handler notes the version it delivered (for the
watches' liveness, ``liveness.WatchAudit``) and wakes the supervisors of the topologies it
concerns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import kopf

from conclave.adapters.cache import Cache
from conclave.api import kinds
from conclave.core.keys import Key
from conclave.core.marks import LEASE_LABEL, MEMBERS_LABEL
from conclave.handlers import gating
from conclave.handlers.liveness import Deliveries, Watched
from conclave.observe.reading import (
    SERVICE_NAME_LABEL,
    SINGLETON,
    TOPOLOGY,
)

WATCHED = (
    Watched(kinds.TOPOLOGY),
    Watched(kinds.PROCESS_GROUP),
    Watched(kinds.SINGLETON),
    Watched(kinds.ENDPOINT_SLICE),
    Watched(kinds.SERVICE),
    Watched(kinds.POD),
    Watched(kinds.CONFIG_MAP, MEMBERS_LABEL),
    Watched(kinds.LEASE, LEASE_LABEL),
)
"""Every kind conclave reads; only the ConfigMaps and Leases conclave owns, filtered by the
API server."""


class NoDiffBase(kopf.DiffBaseStorage):
    """No essences: kopf builds one for every event it delivers (a deep copy of the body,
    minus what it ignores) to tell changes apart for on.create/update/delete handlers.
    conclave has none (``on.event`` and indexes only), so nothing is ever compared or
    stored; at thousands of objects the copies were a tenth of the operator's time."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        """Called by kopf only after change-detecting handlers, of which there are none."""


def configure(settings: kopf.OperatorSettings) -> None:
    """Apply the label selectors of ``WATCHED`` to kopf's watches; no diff-bases; a
    readiness gate that costs linear time in the objects listed (``gating``)."""
    gating.install()
    for watched in WATCHED:
        if watched.selector:
            group = watched.kind.group or watched.kind.version  # kopf's spelling: v1 for the core group
            settings.watching.label_selectors[group, watched.kind.plural] = watched.selector
    settings.persistence.diffbase_storage = NoDiffBase()


Affected = Callable[[dict[str, Any]], Iterable[Key]]


def drop_managed_fields(body: kopf.Body) -> None:
    """Drop ``metadata.managedFields`` from the event kopf holds (nothing reads them; the
    cache keeps none). kopf keeps every listed object's event while the readiness gate is
    closed: a start over 10,000 singletons and their Leases peaked at 418 MiB without
    them, 489 MiB with them."""
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)


def register(
    registry: kopf.OperatorRegistry,
    cache: Cache,
    wake: Callable[[Key], None],
    deliveries: Deliveries | None = None,
) -> None:
    """Watch every kind of ``WATCHED``; ``wake(key)`` asks for topology ``key`` to be looked at
    (the runtime's supervisors; handlers never plan or write themselves). ``deliveries``
    notes the version of every object each event delivered."""
    seen = deliveries if deliveries is not None else Deliveries()

    def watch(kind: str, group: str, version: str, plural: str, affected: Affected) -> None:
        """Cache every ``plural`` object and wake the supervisors it concerns.

        The cache is filled by a kopf index: kopf runs no other handler until every
        watched kind's initial listing is indexed, so no supervisor ever plans from a
        half-listed cluster (an owner pod not listed yet must never look gone).
        """

        @kopf.index(group, version, plural, registry=registry, id=f"cache/{plural}")
        async def remember(body: kopf.Body, **_: Any) -> None:
            drop_managed_fields(body)
            cache.put(kind, body)

        @kopf.on.event(group, version, plural, registry=registry, id=f"wake/{plural}")
        async def changed(event: kopf.RawEvent, **_: Any) -> None:
            body: dict[str, Any] = dict(event["object"])
            seen.delivered(kind, event["type"], body)
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

    affected_by: dict[str, Affected] = {
        kinds.TOPOLOGY.name: itself,
        kinds.PROCESS_GROUP.name: its_topology,
        kinds.SINGLETON.name: its_topology,
        kinds.ENDPOINT_SLICE.name: by_service_label,
        kinds.SERVICE.name: by_service,
        kinds.POD.name: in_namespace,
        kinds.CONFIG_MAP.name: members_of,
        kinds.LEASE.name: singleton_of_lease,
    }
    for watched in WATCHED:
        kind = watched.kind
        watch(kind.name, kind.group, kind.version, kind.plural, affected_by[kind.name])
