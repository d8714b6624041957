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
from typing import Protocol

from conclave.adapters import metrics
from conclave.adapters.apiclient import JSON
from conclave.api import times
from conclave.core import leadership
from conclave.errors import ApiError, LeadershipLost, NotFoundError, transient
from conclave.runtime import outages

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 5.0
"""A standby retries at least this often through an outage, to take over soon after it."""
REFUSAL_GRACE_SECONDS = 60.0
"""How long the API may refuse the Lease (401, 403, 404, 422) before that is fatal: an API
server refuses for a moment while it starts, RBAC that is missing never stops refusing."""


class LeaseApi(Protocol):
    """What the elector needs of the API client (``ApiClient`` has it)."""

    async def get(self, path: str) -> JSON: ...
    async def create(self, path: str, body: JSON) -> JSON: ...
    async def replace(self, path: str, body: JSON) -> JSON: ...


class Elector:
    """Campaigns for, holds and watches over one leader Lease."""

    def __init__(
        self,
        api: LeaseApi,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        refusal_grace: float = REFUSAL_GRACE_SECONDS,
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
        self.refusal_grace = refusal_grace
        self._refused_since: float | None = None
        self._sighting: leadership.Sighting | None = None
        self._renewal_started: float | None = None

    def leading(self) -> bool:
        return leadership.is_leading(self._renewal_started, time.monotonic(), self.renew_deadline)

    def ensure_leading(self) -> None:
        """Raise LeadershipLost unless this replica can prove it still leads; call before a write."""
        if not self.leading():
            raise LeadershipLost(f"{self.identity} no longer holds Lease {self.namespace}/{self.name}")

    async def acquire(self) -> None:
        """Return once this replica holds the lease; a standby waits here, through any API
        outage, and takes over as soon as the lease allows once the API answers again.

        Raises ApiError when the API has refused the Lease itself (RBAC, a missing
        namespace) for REFUSAL_GRACE_SECONDS: retrying cannot fix that.
        """
        logger.info("Campaigning for Lease %s/%s as %s", self.namespace, self.name, self.identity)
        outage = outages.Outage(logger, f"campaign for Lease {self.namespace}/{self.name}")
        backoff = outages.Backoff(self.retry_period, max(self.retry_period, MAX_BACKOFF_SECONDS))
        while True:
            try:  # a request that hangs (etcd down) must not keep a standby from looking again
                held = await asyncio.wait_for(self._try(), timeout=self.renew_deadline)
            except TimeoutError:
                self._failed(outage, self._no_answer())
                await asyncio.sleep(backoff.next())
                continue
            except ApiError as error:
                self._failed(outage, error)
                await asyncio.sleep(backoff.next())
                continue
            outage.recovered()
            backoff.reset()
            self._refused_since = None
            if held:
                break
            await asyncio.sleep(self.retry_period * random.uniform(1.0, 1.2))
        metrics.LEADER.set(1)
        logger.info("Became the active replica as %s", self.identity)

    async def hold(self) -> None:
        """Renew until leadership is lost, then raise LeadershipLost (never returns normally).

        An API outage is retried, each attempt bounded by what is left of the renew deadline
        (as client-go does); once the last successful renewal is older than the deadline,
        this replica may no longer write, and it says so.
        """
        outage = outages.Outage(logger, f"renew Lease {self.namespace}/{self.name}")
        try:
            while True:
                await asyncio.sleep(self.retry_period)
                left = self._deadline_left()
                if left <= 0:
                    why = f" (the API: {outage.last})" if outage.last else ""
                    raise LeadershipLost(
                        f"{self.identity} could not renew within {self.renew_deadline}s{why}"
                    )
                try:
                    held = await asyncio.wait_for(self._try(), timeout=left)
                except TimeoutError:
                    outage.failed(self._no_answer())
                    continue
                except ApiError as error:
                    outage.failed(error)
                    continue
                outage.recovered()
                if not held:
                    raise LeadershipLost(f"Lease {self.namespace}/{self.name} went to another replica")
        finally:
            self._renewal_started = None
            metrics.LEADER.set(0)

    def _no_answer(self) -> ApiError:
        return ApiError(0, "Timeout", f"no answer within the {self.renew_deadline}s renew deadline")

    def _deadline_left(self) -> float:
        if self._renewal_started is None:
            return 0.0
        return self._renewal_started + self.renew_deadline - time.monotonic()

    def _failed(self, outage: outages.Outage, error: ApiError) -> None:
        """Log a campaign failure once per streak; raise it once a refusal has lasted too long."""
        if transient(error):
            self._refused_since = None
            outage.failed(error)
            return
        now = time.monotonic()
        if self._refused_since is None:
            self._refused_since = now
        outage.failed(error, logging.ERROR)
        if now - self._refused_since >= self.refusal_grace:
            logger.error(
                "The API refused Lease %s/%s for %.0fs: %s",
                self.namespace,
                self.name,
                now - self._refused_since,
                error,
            )
            raise error

    async def _try(self) -> bool:
        """One acquire-or-renew attempt; True when this replica holds the lease afterwards.
        Raises ApiError when the Lease could not be read or written (lost races excepted)."""
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
            # someone else wrote first (409), or deleted it since (404): look again next time;
            # a 404 on create, though, means the namespace is missing
            if error.status == 409 or (error.status == 404 and step is not leadership.Step.CREATE):
                return False
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
