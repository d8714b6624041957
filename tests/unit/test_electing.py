"""The elector through API outages: a standby never dies of one and takes over as soon as
the lease allows; a leader that cannot renew within the deadline stops; a refusal that
lasts is fatal, with the API's own error."""

from __future__ import annotations

import asyncio
import copy
import logging

import pytest

from conclave.adapters.apiclient import JSON
from conclave.errors import ApiError, ConflictError, LeadershipLost, NotFoundError
from conclave.runtime.electing import Elector

PATH = "/apis/coordination.k8s.io/v1/namespaces/prod/leases/conclave-operator"


class Store:
    """One Lease behind compare-and-swap, like the API server; ``failing`` makes every
    request fail with that error instead (an outage, or a refusal)."""

    def __init__(self) -> None:
        self.lease: JSON | None = None
        self.version = 0
        self.failing: ApiError | None = None

    def _check(self) -> None:
        if self.failing is not None:
            raise self.failing

    async def get(self, path: str) -> JSON:
        self._check()
        if self.lease is None:
            raise NotFoundError(404, "NotFound", "leases.coordination.k8s.io not found")
        return copy.deepcopy(self.lease)

    async def create(self, path: str, body: JSON) -> JSON:
        self._check()
        if self.lease is not None:
            raise ConflictError(409, "AlreadyExists", "exists")
        return self._store(body)

    async def replace(self, path: str, body: JSON) -> JSON:
        self._check()
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise ConflictError(409, "Conflict", "changed")
        return self._store(body)

    def _store(self, body: JSON) -> JSON:
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)

    @property
    def holder(self) -> str | None:
        return None if self.lease is None else self.lease["spec"]["holderIdentity"]


UNREACHABLE = ApiError(0, "Unreachable", "GET leases: Connection refused")
FORBIDDEN = ApiError(403, "Forbidden", 'leases.coordination.k8s.io "conclave-operator" is forbidden')


def elector(store: Store, identity: str, **timings: float) -> Elector:
    # the Lease keeps whole seconds: 1s is the shortest lease it can hold
    durations = {"lease_duration": 1.0, "renew_deadline": 0.6, "retry_period": 0.1, **timings}
    return Elector(store, "prod", "conclave-operator", identity, **durations)


async def test_a_standby_rides_out_an_outage_and_takes_over_once_the_lease_allows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "conclave")
    store = Store()
    leader = elector(store, "operator-a")
    await leader.acquire()
    holding = asyncio.create_task(leader.hold())
    standby = asyncio.create_task(elector(store, "operator-b").acquire())
    await asyncio.sleep(0.3)
    assert store.holder == "operator-a"
    store.failing = UNREACHABLE
    with pytest.raises(LeadershipLost, match=r"could not renew within 0\.6s"):
        await holding  # the leader stops once it cannot prove it renewed in time
    await asyncio.sleep(1.5)  # longer than the lease: the standby keeps retrying
    assert not standby.done()
    store.failing = None
    await asyncio.wait_for(standby, 2)
    assert store.holder == "operator-b"
    assert store.lease is not None
    assert store.lease["spec"]["leaseTransitions"] == 1
    campaign = [r.getMessage() for r in caplog.records if "campaign for Lease" in r.getMessage()]
    assert campaign == [
        "Failed to campaign for Lease prod/conclave-operator: GET leases: Connection refused; "
        "retrying with backoff",
        campaign[1],
    ], "one line when the outage starts, one when it ends, none per retry"
    assert campaign[1].startswith("Managed to campaign for Lease prod/conclave-operator again after")


async def test_a_leader_survives_an_outage_shorter_than_the_renew_deadline() -> None:
    store = Store()
    leader = elector(store, "operator-a", lease_duration=2.0, renew_deadline=1.5)
    await leader.acquire()
    holding = asyncio.create_task(leader.hold())
    store.failing = UNREACHABLE
    await asyncio.sleep(0.5)
    store.failing = None
    await asyncio.sleep(0.3)
    assert leader.leading()
    assert not holding.done()
    holding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holding


async def test_a_refusal_that_lasts_is_fatal_and_a_passing_one_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store()
    store.failing = FORBIDDEN
    refused = elector(store, "operator-a")
    refused.refusal_grace = 0.3
    with pytest.raises(ApiError) as raised:
        await asyncio.wait_for(refused.acquire(), 5)
    assert raised.value is FORBIDDEN
    assert [r.levelno for r in caplog.records if "refused" in r.getMessage()] == [logging.ERROR]

    store.failing = FORBIDDEN  # an API server starting refuses for a moment, then answers
    patient = elector(store, "operator-b")
    patient.refusal_grace = 5.0
    campaign = asyncio.create_task(patient.acquire())
    await asyncio.sleep(0.2)
    store.failing = None
    await asyncio.wait_for(campaign, 2)
    assert store.holder == "operator-b"
