"""Leader election on a coordination.k8s.io Lease, so exactly one replica is active.

kopf's peering is not leader election: replicas of equal priority all freeze, and a
frozen replica that resumes does not know it was replaced (PITFALLS §1). This follows
client-go's leaderelection instead: acquire by compare-and-swap, renew every retry
period, count another holder's lease expired only by this replica's own clock, and stop
writing the moment the last successful renewal is older than the renew deadline. The
decisions are ``core.leadership``'s; this module only does the I/O and the waiting.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
import time

from conclave.adapters import metrics
from conclave.adapters.apiclient import JSON, ApiClient
from conclave.api import times
from conclave.core import leadership
from conclave.errors import ApiError, LeadershipLost, NotFoundError

logger = logging.getLogger(__name__)


class Elector:
    """Campaigns for, holds and watches over one leader Lease."""

    def __init__(
        self,
        api: ApiClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        if not lease_duration > renew_deadline > 1.2 * retry_period:
            raise ValueError(
                f"leader election needs leaseDuration ({lease_duration}s) > renewDeadline "
                f"({renew_deadline}s) > 1.2 x retryPeriod ({retry_period}s)"
            )
        self.api = api
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._sighting: leadership.Sighting | None = None
        self._renewal_started: float | None = None

    def leading(self) -> bool:
        return leadership.is_leading(self._renewal_started, time.monotonic(), self.renew_deadline)

    def ensure_leading(self) -> None:
        """Raise LeadershipLost unless this replica can prove it still leads; call before a write."""
        if not self.leading():
            raise LeadershipLost(f"{self.identity} no longer holds Lease {self.namespace}/{self.name}")

    async def acquire(self) -> None:
        """Return once this replica holds the lease; a standby waits here."""
        logger.info("Campaigning for Lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not await self._try():
            await asyncio.sleep(self.retry_period * random.uniform(1.0, 1.2))
        metrics.LEADER.set(1)
        logger.info("Became the active replica as %s", self.identity)

    async def hold(self) -> None:
        """Renew until leadership is lost, then raise LeadershipLost (never returns normally)."""
        try:
            while True:
                await asyncio.sleep(self.retry_period)
                if not self.leading():
                    raise LeadershipLost(f"{self.identity} could not renew within {self.renew_deadline}s")
                try:
                    if not await self._try():
                        raise LeadershipLost(f"Lease {self.namespace}/{self.name} went to another replica")
                except ApiError as error:
                    logger.warning("Failed to renew the leader Lease: %s", error)
        finally:
            self._renewal_started = None
            metrics.LEADER.set(0)

    async def _try(self) -> bool:
        """One acquire-or-renew attempt; True when this replica holds the lease afterwards."""
        started = time.monotonic()
        try:
            lease = await self.api.get(self.path)
        except NotFoundError:
            lease = {}
        record = _record(lease)
        self._sighting = leadership.sight(self._sighting, record, started)
        step = leadership.next_step(self._sighting, self.identity, started)
        if step is leadership.Step.WAIT:
            return False
        body = self._body(lease, record, step)
        try:
            if step is leadership.Step.CREATE:
                await self.api.create(self.collection, body)
            else:
                await self.api.replace(self.path, body)  # CAS: carries the resourceVersion read
        except ApiError as error:
            if error.status in (404, 409):
                return False  # someone else wrote first; look again next time
            raise
        self._renewal_started = started
        return True

    def _body(self, lease: JSON, record: leadership.LeaseRecord, step: leadership.Step) -> JSON:
        now = times.micro_time(datetime.datetime.now(datetime.UTC))
        spec = dict(lease.get("spec", {}))
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=round(self.lease_duration),
            renewTime=now,
            leaseTransitions=leadership.transitions_after(step, record),
        )
        if step is not leadership.Step.RENEW or "acquireTime" not in spec:
            spec["acquireTime"] = now
        metadata = dict(lease.get("metadata", {"name": self.name, "namespace": self.namespace}))
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}


def _record(lease: JSON) -> leadership.LeaseRecord:
    spec = lease.get("spec", {})
    return leadership.LeaseRecord(
        holder=spec.get("holderIdentity") or "",
        duration_seconds=float(spec.get("leaseDurationSeconds") or 0),
        transitions=int(spec.get("leaseTransitions") or 0),
        version=lease.get("metadata", {}).get("resourceVersion"),
    )
