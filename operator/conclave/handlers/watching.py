"""The watch handlers, registered on a registry of their own (no module-level state).

``on.event`` only: it is level-based and writes nothing to the watched objects, unlike
on.create/update, which annotate every object they handle (PITFALLS §1).
"""

from __future__ import annotations

from typing import Any

import kopf

from conclave.api import GROUP, VERSION
from conclave.cache import Cache
from conclave.supervising import Key, Supervisors

TOPOLOGY, PROCESS_GROUP, SINGLETON = "ClusterTopology", "ProcessGroup", "Singleton"
PLURALS = {TOPOLOGY: "clustertopologies", PROCESS_GROUP: "processgroups", SINGLETON: "singletons"}


def register(registry: kopf.OperatorRegistry, cache: Cache, supervisors: Supervisors) -> None:
    def record(kind: str, event: kopf.RawEvent) -> dict[str, Any]:
        body: dict[str, Any] = dict(event["object"])
        metadata = body["metadata"]
        if event["type"] == "DELETED":
            cache.drop(kind, metadata["namespace"], metadata["name"])
        else:
            cache.put(kind, body)
        return body

    @kopf.on.event(GROUP, VERSION, PLURALS[TOPOLOGY], registry=registry)
    async def topology_changed(event: kopf.RawEvent, **_: Any) -> None:
        body = record(TOPOLOGY, event)
        supervisors.wake(Key(body["metadata"]["namespace"], body["metadata"]["name"]))

    async def dependent_changed(kind: str, event: kopf.RawEvent) -> None:
        body = record(kind, event)
        topology = body.get("spec", {}).get("topology")
        if topology:
            supervisors.wake(Key(body["metadata"]["namespace"], topology))

    @kopf.on.event(GROUP, VERSION, PLURALS[PROCESS_GROUP], registry=registry)
    async def process_group_changed(event: kopf.RawEvent, **_: Any) -> None:
        await dependent_changed(PROCESS_GROUP, event)

    @kopf.on.event(GROUP, VERSION, PLURALS[SINGLETON], registry=registry)
    async def singleton_changed(event: kopf.RawEvent, **_: Any) -> None:
        await dependent_changed(SINGLETON, event)
