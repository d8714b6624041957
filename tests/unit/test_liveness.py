"""The watches' liveness: a watch is stale only when the API shows an object version that
the watch has not delivered, nor anything newer of it, for longer than the grace period;
a quiet watch, a busy one, and an API outage are not stale."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from conclave.api import kinds
from conclave.errors import ApiError
from conclave.handlers.liveness import Deliveries, WatchAudit, Watched

GRACE = 70.0


def pod(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "prod", "name": name, "resourceVersion": version}}


class Api:
    """What a consistent LIST shows now; ``down``: the API cannot be reached."""

    def __init__(self) -> None:
        self.pods: dict[str, str] = {}
        self.down = False
        self.asked: list[tuple[str, dict[str, str]]] = []

    async def list(self, path: str, query: Mapping[str, str]) -> dict[str, Any]:
        self.asked.append((path, dict(query)))
        if self.down:
            raise ApiError(0, "Unreachable", "Connection refused")
        return {"metadata": {}, "items": [pod(name, version) for name, version in sorted(self.pods.items())]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deliveries() -> Deliveries:
    return Deliveries()


@pytest.fixture
def audit(api: Api, deliveries: Deliveries, clock: Clock) -> WatchAudit:
    return WatchAudit(api.list, deliveries, [Watched(kinds.POD)], ["prod"], grace=GRACE, clock=clock)


def deliver(deliveries: Deliveries, name: str, version: str, event: str | None = "MODIFIED") -> None:
    deliveries.delivered("Pod", event, pod(name, version))


async def test_a_quiet_watch_that_delivered_everything_is_not_stale(
    api: Api, deliveries: Deliveries, clock: Clock, audit: WatchAudit
) -> None:
    api.pods = {"chat-0": "10", "chat-1": "11"}
    deliver(deliveries, "chat-0", "10", None)  # the initial listing
    deliver(deliveries, "chat-1", "11", None)
    for _ in range(10):
        await audit.audit()
        clock.now += GRACE  # hours without a single event
    assert audit.stale() == []
    assert api.asked[0] == ("/api/v1/namespaces/prod/pods", {"limit": "100"})


async def test_a_change_the_watch_never_delivers_makes_it_stale_after_the_grace_period(
    api: Api, deliveries: Deliveries, clock: Clock, audit: WatchAudit
) -> None:
    api.pods = {"chat-0": "10"}
    deliver(deliveries, "chat-0", "10")
    await audit.audit()
    api.pods = {"chat-0": "12", "chat-1": "13"}  # changed and created, the watch silent
    await audit.audit()
    clock.now += GRACE - 1
    await audit.audit()
    assert audit.stale() == []
    clock.now += 2
    await audit.audit()
    assert audit.stale() == ["the Pod watch has not delivered the current prod/chat-0 for 71s"]

    deliver(deliveries, "chat-0", "12")  # the watch catches up (kopf listed again)
    deliver(deliveries, "chat-1", "13")
    await audit.audit()
    assert audit.stale() == []


async def test_a_deletion_the_watch_never_delivers_makes_it_stale_too(
    api: Api, deliveries: Deliveries, clock: Clock, audit: WatchAudit
) -> None:
    api.pods = {"chat-0": "10"}
    deliver(deliveries, "chat-0", "10")
    api.pods = {}
    await audit.audit()
    clock.now += GRACE + 1
    await audit.audit()
    assert audit.stale() == ["the Pod watch has not delivered the current prod/chat-0 for 71s"]
    deliver(deliveries, "chat-0", "10", "DELETED")
    await audit.audit()
    assert audit.stale() == []


async def test_a_busy_object_the_watch_keeps_up_with_is_not_stale(
    api: Api, deliveries: Deliveries, clock: Clock, audit: WatchAudit
) -> None:
    for version in range(100, 130):  # every list is a version ahead of the last delivery
        api.pods = {"chat-0": str(version + 1)}
        deliver(deliveries, "chat-0", str(version))
        await audit.audit()
        clock.now += 10
    assert audit.stale() == []


async def test_an_api_outage_proves_nothing_either_way(
    api: Api, deliveries: Deliveries, clock: Clock, audit: WatchAudit
) -> None:
    api.pods = {"chat-0": "10"}
    deliver(deliveries, "chat-0", "10")
    api.down = True
    for _ in range(5):
        await audit.audit()
        clock.now += GRACE
    assert audit.stale() == []


async def test_cluster_wide_it_lists_every_namespace_with_the_kinds_label_selector(
    deliveries: Deliveries, clock: Clock
) -> None:
    asked: list[tuple[str, dict[str, str]]] = []

    async def lister(path: str, query: Mapping[str, str]) -> dict[str, Any]:
        asked.append((path, dict(query)))
        return {"metadata": {}, "items": []}

    leases = Watched(kinds.LEASE, "conclave.dev/lease-of")
    await WatchAudit(lister, deliveries, [leases], [], grace=GRACE, clock=clock).audit()
    assert asked == [
        ("/apis/coordination.k8s.io/v1/leases", {"limit": "100", "labelSelector": "conclave.dev/lease-of"})
    ]
